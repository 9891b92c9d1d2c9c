package analysis

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/serviceentry/conflictingserviceentries.go.
func init() {
	register(&Analyzer{
		Name:        "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
		Description: "Checks if multiple ServiceEntries define the same host and port with different protocols",
		Codes:       []string{"IST0177"},
		run:         analyzeConflictingServiceEntryProtocols,
	})
}

type scopedHostPort struct {
	scope, host string
	port        uint32
}

type protoEntry struct {
	protocol string
	entry    *Object
}

func analyzeConflictingServiceEntryProtocols(c *Context) {
	index := map[scopedHostPort][]protoEntry{}
	var keys []scopedHostPort
	for _, o := range c.Objects(config.KindServiceEntry) {
		se := o.Spec.(*networking.ServiceEntry)
		for _, scope := range exportScopes(se.ExportTo, o.Namespace) {
			for _, h := range se.Hosts {
				for _, p := range se.Ports {
					k := scopedHostPort{scope, h, p.Number}
					if _, ok := index[k]; !ok {
						keys = append(keys, k)
					}
					index[k] = append(index[k], protoEntry{p.Protocol, o})
				}
			}
		}
	}
	reported := map[*Object]bool{}
	for _, k := range keys {
		entries := index[k]
		if k.scope != exportToAllNamespaces {
			entries = append(append([]protoEntry(nil), entries...), index[scopedHostPort{exportToAllNamespaces, k.host, k.port}]...)
		}
		protocols := map[string]bool{}
		for _, e := range entries {
			protocols[strings.ToUpper(e.protocol)] = true
		}
		if len(protocols) < 2 {
			continue
		}
		seen := map[string]bool{}
		var names []string
		for _, e := range entries {
			if n := e.entry.FullName(); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		sort.Strings(names)
		protos := make([]string, 0, len(protocols))
		for p := range protocols {
			protos = append(protos, p)
		}
		sort.Strings(protos)
		for _, e := range entries {
			if reported[e.entry] {
				continue
			}
			reported[e.entry] = true
			c.report(ConflictingServiceEntryProtocol, e.entry, pathMetadataName,
				strings.Join(names, ", "), k.host, int(k.port), strings.Join(protos, ", "))
		}
	}
}

// exportScopes is exportToScopes: "*" alone, or each namespace exported to.
func exportScopes(exportTo []string, ns string) []string {
	if isExportToAll(exportTo) {
		return []string{exportToAllNamespaces}
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range exportTo {
		if e == exportToNamespaceLocal {
			e = ns
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}
