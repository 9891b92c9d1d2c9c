package analysis

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMessageTableMatchesMessagesYAML checks messages_gen.go against the
// messages.yaml it is generated from (go generate ./pkg/analysis).
func TestMessageTableMatchesMessagesYAML(t *testing.T) {
	data, err := os.ReadFile("messages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Messages []struct {
			Name, Code, Level, Template string
			Args                        []struct{ Name string }
		}
	}
	if err := yaml.Unmarshal(data, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Messages) != len(messageTypes) || len(messageTypes) < 60 {
		t.Fatalf("messages.yaml has %d messages, the Go table %d: run go generate", len(table.Messages), len(messageTypes))
	}
	for i, m := range table.Messages {
		got := messageTypes[i]
		var args []string
		for _, a := range m.Args {
			args = append(args, a.Name)
		}
		if got.Name != m.Name || got.Code != m.Code || got.Level.String() != m.Level || got.Template != m.Template ||
			strings.Join(got.Args, ",") != strings.Join(args, ",") {
			t.Errorf("%s: Go table has %+v, messages.yaml %+v: run go generate", m.Code, got, m)
		}
	}
}

func TestMessageString(t *testing.T) {
	cases := []struct {
		m    Message
		want string
	}{
		{Message{Type: ReferencedResourceNotFound, Resource: ResourceRef{"VirtualService", "default", "reviews"},
			Origin: Origin{"mesh/vs.yaml", 12}, Args: []any{"host", "reviews-bogus"}},
			`Error [IST0101] (VirtualService default/reviews mesh/vs.yaml:12) Referenced host not found: "reviews-bogus"`},
		{Message{Type: PortNameIsNotUnderNamingConvention, Resource: ResourceRef{"Service", "", "s"},
			Origin: Origin{"s.json", 3}, Args: []any{"web", 80, "8080"}},
			"Info [IST0118] (Service s s.json) Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port."},
		{Message{Type: ServiceEntryAddressesRequired, Resource: ResourceRef{"ServiceEntry", "ns", "se"}},
			"Warning [IST0134] (ServiceEntry ns/se) ServiceEntry addresses are required for this protocol."},
	}
	for _, c := range cases {
		if got := c.m.String(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestSortMessagesOrdersAndDedupes(t *testing.T) {
	ref := func(name string) ResourceRef { return ResourceRef{"VirtualService", "default", name} }
	a := Message{Type: ReferencedResourceNotFound, Resource: ref("b"), Origin: Origin{"f", 1}, Args: []any{"host", "x"}}
	dup := a
	b := Message{Type: ReferencedResourceNotFound, Resource: ref("a"), Origin: Origin{"f", 9}, Args: []any{"host", "x"}}
	info := Message{Type: VirtualServiceIneffectiveMatch, Resource: ref("a"), Args: []any{"#1", "#0", "#0"}}
	warn := Message{Type: VirtualServiceUnreachableRule, Resource: ref("a"), Args: []any{"#1", "r"}}
	got := SortMessages([]Message{info, a, warn, dup, b})
	want := []Message{b, a, warn, info}
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].String() != want[i].String() {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestParseLevel(t *testing.T) {
	for s, want := range map[string]Level{"Info": LevelInfo, "warning": LevelWarning, "ERROR": LevelError} {
		if got, err := ParseLevel(s); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseLevel("Fatal"); err == nil {
		t.Error("ParseLevel(Fatal) accepted it")
	}
}

func TestSuppressions(t *testing.T) {
	for _, bad := range []string{"IST0101", "=VirtualService a/b", "IST0101=", "IST0101=a=b"} {
		if _, err := ParseSuppression(bad); err == nil {
			t.Errorf("ParseSuppression(%q) accepted it", bad)
		}
	}
	globs := []struct {
		pattern, s string
		want       bool
	}{
		{"VirtualService default/r", "VirtualService default/r", true},
		{"VirtualService default/*", "VirtualService default/r", true},
		{"*/r", "VirtualService default/r", true},
		{"Virtual*default*", "VirtualService default/r", true},
		{"VirtualService prod/*", "VirtualService default/r", false},
		{"VirtualService default/", "VirtualService default/r", false},
	}
	for _, g := range globs {
		if got := glob(g.pattern, g.s); got != g.want {
			t.Errorf("glob(%q, %q) = %v", g.pattern, g.s, got)
		}
	}
	input := vs("r", "  hosts: [r]\n  gateways: [nope]\n  http:\n  - route:\n    - destination: {host: r}\n") +
		"\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: quiet\n  namespace: prod\n  annotations: {galley.istio.io/analyze-suppress: 'IST0132,IST0101'}\nspec:\n  hosts: [r]\n  gateways: [nope]\n  http:\n  - route:\n    - destination: {host: r}\n"
	s := LoadBytes("in.yaml", []byte(input), LoadOptions{DefaultNamespace: "default"})
	count := func(opts RunOptions) int {
		opts.Analyzers = []string{"virtualservice.GatewayAnalyzer"}
		msgs, err := Run(s, opts)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	if n := count(RunOptions{}); n != 2 {
		t.Errorf("%d messages, want 2 (IST0101 and IST0132 on default/r; prod/quiet suppresses both by annotation)", n)
	}
	if n := count(RunOptions{Suppressions: []Suppression{{"IST0101", "VirtualService default/*"}}}); n != 1 {
		t.Errorf("%d messages with IST0101 suppressed, want 1", n)
	}
	if n := count(RunOptions{Namespace: "prod"}); n != 0 {
		t.Errorf("%d messages in namespace prod, want 0", n)
	}
	if _, err := Run(s, RunOptions{Analyzers: []string{"no.SuchAnalyzer"}}); err == nil {
		t.Error("an unknown analyzer name was accepted")
	}
}

// TestAnalyzersRegistered checks the registry: unique names and aliases,
// codes that messages.yaml defines.
func TestAnalyzersRegistered(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Analyzers() {
		for _, n := range append([]string{a.Name}, a.Aliases...) {
			if seen[n] {
				t.Errorf("analyzer name %q registered twice", n)
			}
			seen[n] = true
			if got, ok := AnalyzerByName(n); !ok || got != a {
				t.Errorf("AnalyzerByName(%q) does not find %s", n, a.Name)
			}
		}
		if len(a.Codes) == 0 || a.Description == "" {
			t.Errorf("%s: no codes or description", a.Name)
		}
		for _, c := range a.Codes {
			if _, ok := MessageTypeByCode(c); !ok {
				t.Errorf("%s: code %s is not in messages.yaml", a.Name, c)
			}
		}
	}
}

// TestSluiceCodes checks sluice's own codes: in the SLU range, never an
// Istio code, each reported by one sluice.* analyzer, and documented in
// docs/cli.md.
func TestSluiceCodes(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	reporters := map[string][]string{}
	for _, a := range Analyzers() {
		for _, c := range a.Codes {
			if strings.HasPrefix(c, "SLU") != strings.HasPrefix(a.Name, "sluice.") {
				t.Errorf("%s reports %s: SLU codes belong to sluice.* analyzers only", a.Name, c)
			}
			reporters[c] = append(reporters[c], a.Name)
		}
		if strings.HasPrefix(a.Name, "sluice.") && !strings.Contains(string(doc), "`"+a.Name+"`") {
			t.Errorf("docs/cli.md does not list analyzer %s", a.Name)
		}
	}
	seen := map[string]bool{}
	for _, mt := range SluiceMessageTypes() {
		if !strings.HasPrefix(mt.Code, "SLU") || seen[mt.Code] {
			t.Errorf("%s: code %s not in the SLU range or repeated", mt.Name, mt.Code)
		}
		seen[mt.Code] = true
		for _, ist := range MessageTypes() {
			if ist.Code == mt.Code || ist.Name == mt.Name {
				t.Errorf("%s %s reuses Istio's %s %s", mt.Code, mt.Name, ist.Code, ist.Name)
			}
		}
		if len(reporters[mt.Code]) != 1 {
			t.Errorf("%s is reported by %v, want one analyzer", mt.Code, reporters[mt.Code])
		}
		if !strings.Contains(string(doc), mt.Code+" "+mt.Name) {
			t.Errorf("docs/cli.md does not document %s %s", mt.Code, mt.Name)
		}
		if strings.Count(mt.Template, "%") != len(mt.Args) {
			t.Errorf("%s: template has %d verbs, %d args", mt.Code, strings.Count(mt.Template, "%"), len(mt.Args))
		}
	}
}
