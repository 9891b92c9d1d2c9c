package config

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated section of docs/config.md")

const configDoc = "../../docs/config.md"

// docs/config.md's support section is the table, rendered; -update
// rewrites it. The prose elsewhere must not call a field rejected that
// the table supports without any rejection.
func TestSupportDocs(t *testing.T) {
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, SupportDocsBegin), strings.Index(doc, SupportDocsEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s has no generated support section (markers %q ... %q)", configDoc, SupportDocsBegin, SupportDocsEnd)
	}
	end += len(SupportDocsEnd) + 1
	want := SupportMarkdown()
	if got := doc[begin:end]; got != want {
		if *updateDocs {
			if err := os.WriteFile(configDoc, []byte(doc[:begin]+want+doc[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s: the support section is stale; run `go test ./pkg/config -run TestSupportDocs -update` and review the diff", configDoc)
	}
	prose := doc[:begin] + doc[end:]
	rejected, supported := map[string]bool{}, map[string]bool{}
	for _, f := range SupportTable() {
		name := f.Field[strings.LastIndex(f.Field, ".")+1:]
		name = strings.TrimSuffix(name, "[]")
		switch f.Support {
		case Rejected:
			rejected[name] = true
		case Supported:
			supported[name] = true
		}
	}
	tick := regexp.MustCompile("`([A-Za-z0-9.]+)`")
	for i, line := range strings.Split(prose, "\n") {
		if !strings.Contains(line, "rejected") && !strings.Contains(line, "not implemented") {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(line, -1) {
			name := m[1][strings.LastIndex(m[1], ".")+1:]
			if supported[name] && !rejected[name] {
				t.Errorf("%s:%d calls `%s` rejected or not implemented, but the support table supports it:\n%s", configDoc, i+1, m[1], line)
			}
		}
	}
}

// Every Rejected row can find its field; every row names a kind and,
// but for whole kinds, a spec field or a named label or annotation.
func TestSupportTableRows(t *testing.T) {
	for _, f := range SupportTable() {
		switch {
		case f.Kind == "":
			t.Errorf("row without a kind: %+v", f)
		case f.Support == Rejected && (f.find == nil || f.Reason == ""):
			t.Errorf("rejected row %s %s has no finder or reason", f.Kind, f.Field)
		case f.Support != NotEnforcedKind && !strings.HasPrefix(f.Field, "spec.") && !wholeObjectKind(f.Kind) &&
			!strings.HasPrefix(f.Field, "metadata.labels[") && !strings.HasPrefix(f.Field, "metadata.annotations["):
			t.Errorf("row %s %q: field paths start with spec.", f.Kind, f.Field)
		case f.Support == NotEnforcedKind && (f.Field != "" || !strings.Contains(f.Kind, "/")):
			t.Errorf("not-enforced row %+v: a whole kind as group/Kind", f)
		}
	}
}

// wholeObjectKind: kinds whose rows name any path of the object, as their
// Spec is the whole Kubernetes object (kube.go).
func wholeObjectKind(kind string) bool {
	return kind == string(KindPod) || kind == string(KindNode) || kind == string(KindEndpointSlice) || kind == string(KindNamespace)
}
