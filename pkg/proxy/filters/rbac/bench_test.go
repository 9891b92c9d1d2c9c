package rbac

import (
	"crypto/tls"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// benchPolicies is a realistic Istio policy set in the shapes Istio's
// builder makes: 10 ALLOW rules, each for one caller (service account
// regex, or namespace), methods, path prefixes or exact paths, hosts
// (ignoring case), a port, one with a JWT claim.
func benchPolicies() string {
	var b strings.Builder
	b.WriteString("action: ALLOW\npolicies:\n")
	for i := range 10 {
		fmt.Fprintf(&b, `  ns[shop]-policy[svc-%d]-rule[0]:
    permissions:
    - andRules: {rules: [
        {orRules: {rules: [{header: {name: ':authority', stringMatch: {exact: svc-%d.shop.svc.cluster.local, ignoreCase: true}}}, {header: {name: ':authority', stringMatch: {prefix: 'svc-%d.shop:', ignoreCase: true}}}]}},
        {orRules: {rules: [{header: {name: ':method', stringMatch: {exact: GET}}}, {header: {name: ':method', stringMatch: {exact: POST}}}]}},
        {orRules: {rules: [{urlPath: {path: {prefix: /api/v%d/}}}, {urlPath: {path: {exact: /health}}}]}},
        {orRules: {rules: [{destinationPort: 8080}]}}]}
    principals:
    - andIds: {ids: [
        {orIds: {ids: [{authenticated: {principalName: {safeRegex: {regex: 'spiffe://.+/ns/shop/(.+/|)sa/caller-%d(/.+)?'}}}}, {authenticated: {principalName: {exact: spiffe://cluster.local/ns/ops/sa/admin-%d}}}]}},
        {notId: {orIds: {ids: [{directRemoteIp: {addressPrefix: 192.168.0.0, prefixLen: 16}}]}}}]}
`, i, i, i, i, i, i)
	}
	b.WriteString(`  ns[shop]-policy[jwt]-rule[0]:
    permissions: [{andRules: {rules: [{orRules: {rules: [{urlPath: {path: {prefix: /public/}}}]}}]}}]
    principals: [{andIds: {ids: [{metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: groups}], value: {orMatch: {valueMatchers: [{listMatch: {oneOf: {stringMatch: {exact: shoppers}}}}, {stringMatch: {exact: shoppers}}]}}}}]}}]
`)
	return b.String()
}

const benchDeny = `action: DENY
policies:
  ns[shop]-policy[deny-admin]-rule[0]:
    permissions: [{andRules: {rules: [{orRules: {rules: [{urlPath: {path: {prefix: /admin}}}]}}]}}]
    principals: [{andIds: {ids: [{notId: {orIds: {ids: [{authenticated: {principalName: {safeRegex: {regex: .*/ns/ops/.*}}}}]}}}]}}]
  ns[shop]-policy[deny-ip]-rule[0]:
    permissions: [{andRules: {rules: [{any: true}]}}]
    principals: [{andIds: {ids: [{orIds: {ids: [{remoteIp: {addressPrefix: 203.0.113.0, prefixLen: 24}}]}}]}}]
`

// benchInput is an mTLS request from caller-9 (the last ALLOW policy by
// name decides, after the nine before it failed).
func benchInput(path string) Input {
	r := httptest.NewRequest("GET", "http://svc-9.shop.svc.cluster.local"+path, nil)
	r.Host = "svc-9.shop.svc.cluster.local"
	r.Header.Set("User-Agent", "bench")
	conn := &httpfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.1.2.3:45678"), LocalAddr: netip.MustParseAddrPort("10.1.2.4:8080"),
		TLS: &tls.ConnectionState{}, PeerPrincipal: "spiffe://cluster.local/ns/shop/sa/caller-9"}
	return Input{R: r, Path: path, Conn: conn}
}

// BenchmarkEngine: the engines per request, as a sidecar with a DENY and
// an ALLOW filter runs them: allowed (the last ALLOW policy matches) and
// denied (no ALLOW policy matches; by DENY).
func BenchmarkEngine(b *testing.B) {
	allow, deny := engine(b, benchPolicies()), engine(b, benchDeny)
	for _, c := range []struct {
		name, path string
		want       bool
	}{{"allowed", "/api/v9/items", true}, {"no-allow-matched", "/other", false}, {"denied-by-deny", "/admin/x", false}} {
		b.Run(c.name, func(b *testing.B) {
			in := benchInput(c.path)
			b.ReportAllocs()
			for b.Loop() {
				in.remoteSet = false
				ok, _ := deny.Eval(&in)
				if ok {
					ok, _ = allow.Eval(&in)
				}
				if ok != c.want {
					b.Fatal("wrong decision")
				}
			}
		})
	}
}

// benchRoute is a route without per-route RBAC config.
type benchRoute struct{}

func (benchRoute) RouteName() string                { return "r" }
func (benchRoute) FilterConfig(httpfilter.Slot) any { return nil }

// BenchmarkFilterDecode: the HTTP filters' Decode for an allowed request,
// counters, decision record and all (what the request path pays).
func BenchmarkFilterDecode(b *testing.B) {
	var mk = func(doc string) httpfilter.Filter {
		var m rbachttp.RBAC
		fromYAML(b, "rules:\n"+indent(doc), &m)
		a, _ := anypb.New(&m)
		f, err := factory{}.NewFilter(a)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	deny, allow := mk(benchDeny), mk(benchPolicies())
	in := benchInput("/api/v9/items")
	sc := httpfilter.NewScope()
	s := &httpfilter.Stream{R: in.R, Conn: in.Conn, Route: benchRoute{}, Listener: sc.Listener("inbound_0.0.0.0_8080"), Proxy: sc}
	s.Info.StatPrefix = "inbound_0.0.0.0_8080"
	b.ReportAllocs()
	for b.Loop() {
		if deny.Decode(s) != httpfilter.Continue || allow.Decode(s) != httpfilter.Continue {
			b.Fatal("denied")
		}
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
