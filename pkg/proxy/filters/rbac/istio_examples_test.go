package rbac

import (
	"os"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Istio's documented AuthorizationPolicy examples
// (istio.io/latest/docs/reference/config/security/authorization-policy/),
// written as Istio's builder translates them (the shapes of
// pilot/pkg/security/authz/builder/testdata): per rule one policy
// ns[<ns>]-policy[<name>]-rule[<i>], each "to" an and of ors in the
// permissions, each "from" an and of ors in the principals with the
// "when" conditions appended.

// exampleAllow is the reference's first example in namespace foo:
//
//	action: ALLOW
//	rules:
//	- from: [{source: {principals: ["cluster.local/ns/default/sa/curl"]}}, {source: {namespaces: ["test"]}}]
//	  to: [{operation: {methods: ["GET"], paths: ["/info*"]}}, {operation: {methods: ["POST"], paths: ["/data"]}}]
//	  when: [{key: request.auth.claims[iss], values: ["https://accounts.google.com"]}]
const exampleAllow = `action: ALLOW
policies:
  ns[foo]-policy[httpbin]-rule[0]:
    permissions:
    - andRules: {rules: [
        {orRules: {rules: [{header: {name: ':method', stringMatch: {exact: GET}}}]}},
        {orRules: {rules: [{urlPath: {path: {prefix: /info}}}]}}]}
    - andRules: {rules: [
        {orRules: {rules: [{header: {name: ':method', stringMatch: {exact: POST}}}]}},
        {orRules: {rules: [{urlPath: {path: {exact: /data}}}]}}]}
    principals:
    - andIds: {ids: [
        {orIds: {ids: [{authenticated: {principalName: {exact: spiffe://cluster.local/ns/default/sa/curl}}}]}},
        {metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: iss}], value: {orMatch: {valueMatchers: [
          {listMatch: {oneOf: {stringMatch: {exact: "https://accounts.google.com"}}}}, {stringMatch: {exact: "https://accounts.google.com"}}]}}}}]}
    - andIds: {ids: [
        {orIds: {ids: [{authenticated: {principalName: {safeRegex: {regex: .*/ns/test/.*}}}}]}},
        {metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: iss}], value: {orMatch: {valueMatchers: [
          {listMatch: {oneOf: {stringMatch: {exact: "https://accounts.google.com"}}}}, {stringMatch: {exact: "https://accounts.google.com"}}]}}}}]}
`

// exampleDeny: DENY requests from namespace dev to POST:
//
//	action: DENY
//	rules: [{from: [{source: {namespaces: ["dev"]}}], to: [{operation: {methods: ["POST"]}}]}]
const exampleDeny = `action: DENY
policies:
  ns[foo]-policy[httpbin]-rule[0]:
    permissions: [{andRules: {rules: [{orRules: {rules: [{header: {name: ':method', stringMatch: {exact: POST}}}]}}]}}]
    principals: [{andIds: {ids: [{orIds: {ids: [{authenticated: {principalName: {safeRegex: {regex: .*/ns/dev/.*}}}}]}}]}}]
`

// exampleAllowNothing is "spec: {}" (a policy without rules); exampleDenyAll
// is "action: DENY, rules: [{}]"; exampleAllowAll is "rules: [{}]".
const (
	exampleAllowNothing = `action: ALLOW
policies:
  ns[foo]-policy[allow-nothing]-rule[0]: {permissions: [{notRule: {any: true}}], principals: [{notId: {any: true}}]}
`
	exampleDenyAll = `action: DENY
policies:
  ns[foo]-policy[deny-all]-rule[0]: {permissions: [{andRules: {rules: [{any: true}]}}], principals: [{andIds: {ids: [{any: true}]}}]}
`
	exampleAllowAll = `action: ALLOW
policies:
  ns[foo]-policy[allow-all]-rule[0]: {permissions: [{andRules: {rules: [{any: true}]}}], principals: [{andIds: {ids: [{any: true}]}}]}
`
	// exampleRequestPrincipal: from requestPrincipals ["*"]: a request
	// must carry a valid token.
	exampleRequestPrincipal = `action: ALLOW
policies:
  ns[foo]-policy[require-jwt]-rule[0]:
    permissions: [{andRules: {rules: [{any: true}]}}]
    principals:
    - andIds: {ids: [{orIds: {ids: [{andIds: {ids: [
        {metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: iss}], value: {stringMatch: {safeRegex: {regex: .+}}}}},
        {metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: sub}], value: {stringMatch: {safeRegex: {regex: .+}}}}}]}}]}}]}
`
)

func TestIstioExamples(t *testing.T) {
	google := map[string]any{"iss": "https://accounts.google.com", "sub": "u"}
	curl := "spiffe://cluster.local/ns/default/sa/curl"
	testNS := "spiffe://cluster.local/ns/test/sa/any"
	req := func(method, path, principal string, jwt map[string]any) Attributes {
		return with(base(method, "httpbin.foo", path), func(a *Attributes) { a.SourcePrincipal, a.JWTPayload = principal, jwt })
	}
	const p0 = "ns[foo]-policy[httpbin]-rule[0]"
	runRows(t, engine(t, exampleAllow), []row{
		{name: "curl GET /info with google token", a: req("GET", "/info/x", curl, google), allowed: true, policy: p0},
		{name: "test namespace POST /data", a: req("POST", "/data", testNS, google), allowed: true, policy: p0},
		{name: "curl POST /info", a: req("POST", "/info", curl, google)},
		{name: "curl GET /data", a: req("GET", "/data", curl, google)},
		{name: "POST /data/x is not /data", a: req("POST", "/data/x", curl, google)},
		{name: "other service account", a: req("GET", "/info", "spiffe://cluster.local/ns/default/sa/other", google)},
		{name: "plaintext peer", a: req("GET", "/info", "", google)},
		{name: "no token", a: req("GET", "/info", curl, nil)},
		{name: "other issuer", a: req("GET", "/info", curl, map[string]any{"iss": "https://evil"})},
	})
	dev := "spiffe://cluster.local/ns/dev/sa/x"
	runRows(t, engine(t, exampleDeny), []row{
		{name: "dev POST denied", a: req("POST", "/", dev, nil), policy: p0},
		{name: "dev GET allowed", a: req("GET", "/", dev, nil), allowed: true},
		{name: "prod POST allowed", a: req("POST", "/", "spiffe://cluster.local/ns/prod/sa/x", nil), allowed: true},
		{name: "plaintext POST allowed (no namespace)", a: req("POST", "/", "", nil), allowed: true},
	})
	runRows(t, engine(t, exampleAllowNothing), []row{{name: "allow-nothing denies", a: req("GET", "/", curl, google)}})
	runRows(t, engine(t, exampleDenyAll), []row{{name: "deny-all denies", a: req("GET", "/", "", nil), policy: "ns[foo]-policy[deny-all]-rule[0]"}})
	runRows(t, engine(t, exampleAllowAll), []row{{name: "allow-all allows", a: req("GET", "/", "", nil), allowed: true, policy: "ns[foo]-policy[allow-all]-rule[0]"}})
	runRows(t, engine(t, exampleRequestPrincipal), []row{
		{name: "token", a: req("GET", "/", "", google), allowed: true, policy: "ns[foo]-policy[require-jwt]-rule[0]"},
		{name: "no token", a: req("GET", "/", "", nil)},
	})
}

// TestTrace: the decision trace names the policy, and for one that did
// not match, the permission or principal part that failed and the value
// seen.
func TestTrace(t *testing.T) {
	e := engine(t, exampleAllow)
	a := with(base("POST", "httpbin.foo", "/info"), func(a *Attributes) {
		a.SourcePrincipal, a.JWTPayload = "spiffe://cluster.local/ns/default/sa/curl", map[string]any{"iss": "https://accounts.google.com"}
	})
	in := a.Input(false)
	tr := e.Trace(&in)
	if tr.Allowed || tr.Reason != "no ALLOW policy matched" || len(tr.Policies) != 1 {
		t.Fatalf("trace %+v", tr)
	}
	p := tr.Policies[0]
	if p.Matched || len(p.Permissions) != 2 || p.Permissions[0].Matched || p.Permissions[0].Why != `header :method == "GET" did not match (got "POST")` ||
		p.Permissions[1].Why != `path == "/data" did not match (path "/info")` || !p.Principals[0].Matched || p.Principals[1].Matched {
		t.Errorf("policy trace %+v", p)
	}
	if why := p.Principals[1].Why; why != `source.principal matches regex ".*/ns/test/.*" did not match (peer "spiffe://cluster.local/ns/default/sa/curl")` {
		t.Errorf("principal why %q", why)
	}
}

// TestTraceChain: a chain's RBAC filters are traced in order and the
// first denial decides, as on the request path.
func TestTraceChain(t *testing.T) {
	var deny, allow rbacpb.RBAC
	fromYAML(t, exampleDeny, &deny)
	fromYAML(t, exampleAllow, &allow)
	hf := func(r *rbacpb.RBAC) *hcm.HttpFilter {
		a, _ := anypb.New(&rbachttp.RBAC{Rules: r})
		return &hcm.HttpFilter{Name: Name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}
	}
	router, _ := anypb.New(&routerv3.Router{})
	chain := []*hcm.HttpFilter{hf(&deny), hf(&allow), {Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: router}}}
	dev := with(base("POST", "h", "/data"), func(a *Attributes) { a.SourcePrincipal = "spiffe://cluster.local/ns/dev/sa/x" })
	ct, err := TraceHTTPFilters(chain, &dev)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Allowed || len(ct.Filters) != 1 || ct.Decision != "denied: denied by DENY policy ns[foo]-policy[httpbin]-rule[0]" {
		t.Errorf("dev POST: %+v", ct)
	}
	curl := with(base("GET", "h", "/info"), func(a *Attributes) {
		a.SourcePrincipal, a.JWTPayload = "spiffe://cluster.local/ns/default/sa/curl", map[string]any{"iss": "https://accounts.google.com"}
	})
	if ct, err = TraceHTTPFilters(chain, &curl); err != nil || !ct.Allowed || len(ct.Filters) != 2 || ct.Filters[1].Index != 1 ||
		ct.Filters[1].Rules.Policy != "ns[foo]-policy[httpbin]-rule[0]" {
		t.Errorf("curl GET: %+v %v", ct, err)
	}

	b, err := os.ReadFile("testdata/istio/tcp/deny-both-http-tcp-out.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lf listener.Filter
	fromYAML(t, string(b), &lf)
	conn := Attributes{SourceIP: ip("10.0.0.1"), DestinationIP: ip("10.0.0.2"), DestinationPort: 80, SourcePrincipal: "spiffe://td/ns/ns-1/sa/x"}
	ct, err = TraceNetworkFilters([]*listener.Filter{&lf}, &conn)
	if err != nil || ct.Allowed || !ct.Filters[0].Rules.Policies[4].Matched {
		t.Fatalf("tcp trace, port 80 from ns-1 (rule[4]: port 80): %+v %v", ct, err)
	}
	// Istio widens a DENY rule with HTTP-only fields to match every
	// connection on TCP (rule[0] becomes any/any), so every connection is
	// denied, by the first policy by name.
	conn.DestinationPort, conn.SourcePrincipal = 9999, ""
	if ct, err = TraceNetworkFilters([]*listener.Filter{&lf}, &conn); err != nil || ct.Allowed ||
		ct.Decision != "denied: denied by DENY policy ns[foo]-policy[httpbin-deny]-rule[0]" || ct.Filters[0].Rules.Policies[4].Matched {
		t.Errorf("tcp trace: %+v %v", ct, err)
	}
}

// TestTraceListener: a listener's chain for the peer is found (mTLS or
// plaintext by transport_protocol) and its RBAC filters traced.
func TestTraceListener(t *testing.T) {
	var deny rbacpb.RBAC
	fromYAML(t, exampleDeny, &deny)
	ra, _ := anypb.New(&rbachttp.RBAC{Rules: &deny})
	hm, _ := anypb.New(&hcm.HttpConnectionManager{StatPrefix: "s", HttpFilters: []*hcm.HttpFilter{{Name: Name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: ra}}}})
	na, _ := anypb.New(&rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW}})
	l := &listener.Listener{Name: "inbound", FilterChains: []*listener.FilterChain{
		{FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: []*listener.Filter{{Name: NetworkName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: na}}}},
		{FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "tls"}, Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: hm}}}},
	}}
	dev := with(base("POST", "h", "/"), func(a *Attributes) { a.SourcePrincipal = "spiffe://cluster.local/ns/dev/sa/x" })
	if ct, err := TraceListener(l, &dev); err != nil || ct.Allowed || ct.Decision != "denied: denied by DENY policy ns[foo]-policy[httpbin]-rule[0]" {
		t.Errorf("mTLS dev POST: %+v %v", ct, err)
	}
	plain := base("POST", "h", "/")
	if ct, err := TraceListener(l, &plain); err != nil || ct.Allowed || ct.Decision != "denied: no ALLOW policy matched" {
		t.Errorf("plaintext: %+v %v", ct, err)
	}
}
