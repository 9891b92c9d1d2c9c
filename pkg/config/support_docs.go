package config

import (
	"fmt"
	"sort"
	"strings"
)

// Markers of the generated section of docs/config.md.
const (
	SupportDocsBegin = "<!-- BEGIN support table: generated from pkg/config/support_table.go by `go test ./pkg/config -run TestSupportDocs -update`; do not edit -->"
	SupportDocsEnd   = "<!-- END support table -->"
)

// SupportMarkdown renders the support table as the "Support table"
// section of docs/config.md, between the markers.
func SupportMarkdown() string {
	var b strings.Builder
	b.WriteString(SupportDocsBegin + "\n")
	table := SupportTable()
	b.WriteString("\n### Rejected fields\nA resource using one of these is refused with an error naming file, resource and field " +
		"(it keeps its last good version).\n\n| kind | field | why |\n|---|---|---|\n")
	for _, f := range table {
		if f.Support == Rejected {
			fmt.Fprintf(&b, "| %s | `%s` | %s |\n", f.Kind, f.Field, escape(f.Reason))
		}
	}
	b.WriteString("\n### Kinds accepted but not enforced\nKept, and reported on every load as a WARN, in `/debug/status` " +
		"(`not_enforced`) and in `sluice status`.\n\n| kind | what is not done |\n|---|---|\n")
	for _, f := range table {
		if f.Support == NotEnforcedKind {
			fmt.Fprintf(&b, "| %s | %s |\n", f.Kind, escape(f.Reason))
		}
	}
	b.WriteString("\n### Kubernetes fields ignored by design\nFields of Pods, Nodes and EndpointSlices that do not change " +
		"what Istio does; read by nobody on purpose.\n\n| kind | fields | why |\n|---|---|---|\n")
	for _, f := range table {
		if f.Support == IgnoredByDesign {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", f.Kind, escape(f.Field), escape(f.Reason))
		}
	}
	b.WriteString("\n### Supported fields\nEnforced as Istio does (details per kind above). Fields marked † are not yet " +
		"claimed by the conformance runner.\n\n| kind | fields |\n|---|---|\n")
	byKind := map[string][]string{}
	var kinds []string
	notes := map[string][]string{}
	for _, f := range table {
		if f.Support != Supported {
			continue
		}
		if byKind[f.Kind] == nil {
			kinds = append(kinds, f.Kind)
		}
		name := "`" + f.Field + "`"
		if f.Unclaimed != "" {
			name += "†"
		}
		byKind[f.Kind] = append(byKind[f.Kind], name)
		if f.Reason != "" {
			notes[f.Kind] = append(notes[f.Kind], "`"+f.Field+"`: "+escape(f.Reason))
		}
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		cell := strings.Join(byKind[k], ", ")
		if len(notes[k]) > 0 {
			cell += "<br>" + strings.Join(notes[k], "<br>")
		}
		fmt.Fprintf(&b, "| %s | %s |\n", k, cell)
	}
	b.WriteString("\n" + SupportDocsEnd + "\n")
	return b.String()
}

func escape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
