package rbac

import (
	"strings"
	"testing"

	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// TestStatNames: Envoy's names, with rules_stat_prefix and
// shadow_rules_stat_prefix between "rbac." and the counter.
func TestStatNames(t *testing.T) {
	var m rbachttp.RBAC
	fromYAML(t, `rulesStatPrefix: enf_
shadowRulesStatPrefix: istio_dry_run_allow_
rules: {action: DENY, policies: {d: {permissions: [{any: true}], principals: [{any: true}]}}}
shadowRules: {action: ALLOW}
`, &m)
	c, err := CompileHTTP(&m)
	if err != nil {
		t.Fatal(err)
	}
	sc := httpfilter.NewScope()
	st := &Stats{}
	in := base("GET", "h", "/").Input(false)
	if ok, p := c.judge(&in, st, shared(sc), "http", "l"); ok || p != "d" {
		t.Fatalf("judge: %v %q", ok, p)
	}
	var b strings.Builder
	st.WriteText(&b, "l")
	want := "http.l.rbac.enf_denied: 1\nhttp.l.rbac.istio_dry_run_allow_shadow_denied: 1\nhttp.l.rbac.policy.d.denied: 1\n"
	if b.String() != want {
		t.Errorf("stats:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestRingBounded: /debug/authz keeps the last ringSize decisions, newest
// first.
func TestRingBounded(t *testing.T) {
	sc := httpfilter.NewScope()
	sh := shared(sc)
	for i := range ringSize + 10 {
		sh.record(&Decision{Path: "/" + string(rune('a'+i%26)), Action: "ALLOW", Allowed: true, Policy: "p"})
	}
	ds := Recent(sc)
	if len(ds) != ringSize || ds[0].Path != "/"+string(rune('a'+(ringSize+9)%26)) || ds[0].Reason != "allowed by ALLOW policy p" {
		t.Errorf("%d decisions, newest %+v", len(ds), ds[0])
	}
}
