package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
)

// row is one request or connection and the engine's expected answer.
type row struct {
	name    string
	a       Attributes
	tcp     bool
	allowed bool
	policy  string // the deciding policy ("" for none)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

const alice = "spiffe://cluster.local/ns/default/sa/alice"

// base is a plain request from 10.0.0.1 to 10.0.0.2:8080.
func base(method, host, path string) Attributes {
	return Attributes{Method: method, Host: host, Path: path, SourceIP: ip("10.0.0.1"), DestinationIP: ip("10.0.0.2"), DestinationPort: 8080}
}

func with(a Attributes, f func(*Attributes)) Attributes { f(&a); return a }

func runRows(t *testing.T, e *Engine, rows []row) {
	t.Helper()
	for _, r := range rows {
		in := r.a.Input(r.tcp)
		allowed, p := e.Eval(&in)
		if allowed != r.allowed || p != r.policy {
			t.Errorf("%s: allowed=%v policy=%q, want allowed=%v policy=%q", r.name, allowed, p, r.allowed, r.policy)
		}
	}
}

// TestMatchers: each permission and principal, alone, with allow and
// deny rows (ALLOW engines: allowed iff the policy matches).
func TestMatchers(t *testing.T) {
	get := base("GET", "web.example.com", "/api/v1/items?x=1")
	cases := []struct {
		name, perm, prin string
		rows             []row
	}{
		{"any", "any: true", "any: true", []row{{name: "anything", a: get, allowed: true, policy: "p"}}},
		{"header exact", "header: {name: x-user, stringMatch: {exact: bob}}", "any: true", []row{
			{name: "match", a: with(get, func(a *Attributes) { a.Headers = hdr("X-User", "bob") }), allowed: true, policy: "p"},
			{name: "other value", a: with(get, func(a *Attributes) { a.Headers = hdr("X-User", "bobby") })},
			{name: "absent", a: get},
			{name: "two values joined with a comma", a: with(get, func(a *Attributes) { a.Headers = hdr("X-User", "bob", "X-User", "eve") })},
			{name: "on a connection", a: get, tcp: true}}},
		{"header joined values", "header: {name: x-user, stringMatch: {exact: 'bob,eve'}}", "any: true", []row{
			{name: "two lines", a: with(get, func(a *Attributes) { a.Headers = hdr("X-User", "bob", "X-User", "eve") }), allowed: true, policy: "p"}}},
		{"header prefix suffix contains regex", "orRules: {rules: [{header: {name: x-a, stringMatch: {prefix: pre}}}, {header: {name: x-b, stringMatch: {suffix: suf}}}, {header: {name: x-c, containsMatch: mid}}, {header: {name: x-d, safeRegexMatch: {regex: '[0-9]+'}}}]}", "any: true", []row{
			{name: "prefix", a: with(get, func(a *Attributes) { a.Headers = hdr("X-A", "prefix") }), allowed: true, policy: "p"},
			{name: "suffix", a: with(get, func(a *Attributes) { a.Headers = hdr("X-B", "a-suf") }), allowed: true, policy: "p"},
			{name: "contains", a: with(get, func(a *Attributes) { a.Headers = hdr("X-C", "a-mid-b") }), allowed: true, policy: "p"},
			{name: "regex whole value", a: with(get, func(a *Attributes) { a.Headers = hdr("X-D", "123") }), allowed: true, policy: "p"},
			{name: "regex partial value", a: with(get, func(a *Attributes) { a.Headers = hdr("X-D", "123a") })},
			{name: "none", a: with(get, func(a *Attributes) { a.Headers = hdr("X-A", "no") })}}},
		{"header present", "header: {name: x-token, presentMatch: true}", "any: true", []row{
			{name: "present (even empty)", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Token", "") }), allowed: true, policy: "p"},
			{name: "absent", a: get}}},
		{"header present false", "header: {name: x-token, presentMatch: false}", "any: true", []row{
			{name: "absent", a: get, allowed: true, policy: "p"},
			{name: "present", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Token", "t") })}}},
		{"header invert", "header: {name: x-env, stringMatch: {exact: prod}, invertMatch: true}", "any: true", []row{
			{name: "other value", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Env", "dev") }), allowed: true, policy: "p"},
			{name: "absent matches inverted", a: get, allowed: true, policy: "p"},
			{name: "the value", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Env", "prod") })}}},
		{"header missing as empty", "header: {name: x-env, stringMatch: {exact: ''}, treatMissingHeaderAsEmpty: true}", "any: true", []row{
			{name: "absent is empty", a: get, allowed: true, policy: "p"}}},
		{"header range", "header: {name: x-n, rangeMatch: {start: 10, end: 20}}", "any: true", []row{
			{name: "in", a: with(get, func(a *Attributes) { a.Headers = hdr("X-N", "19") }), allowed: true, policy: "p"},
			{name: "end excluded", a: with(get, func(a *Attributes) { a.Headers = hdr("X-N", "20") })},
			{name: "not a number", a: with(get, func(a *Attributes) { a.Headers = hdr("X-N", "x") })}}},
		{"method and authority (Istio's hosts ignore case)", "andRules: {rules: [{header: {name: ':method', stringMatch: {exact: GET}}}, {header: {name: ':authority', stringMatch: {suffix: .example.com, ignoreCase: true}}}]}", "any: true", []row{
			{name: "match", a: get, allowed: true, policy: "p"},
			{name: "authority in upper case", a: with(get, func(a *Attributes) { a.Host = "WEB.EXAMPLE.COM" }), allowed: true, policy: "p"},
			{name: "POST", a: with(get, func(a *Attributes) { a.Method = "POST" })},
			{name: "other host", a: with(get, func(a *Attributes) { a.Host = "web.example.org" })}}},
		{":path keeps the query", "header: {name: ':path', stringMatch: {exact: '/api/v1/items?x=1'}}", "any: true", []row{
			{name: "with query", a: get, allowed: true, policy: "p"}}},
		{"url_path without the query", "urlPath: {path: {prefix: /api/}}", "any: true", []row{
			{name: "prefix", a: get, allowed: true, policy: "p"},
			{name: "other", a: with(get, func(a *Attributes) { a.Path = "/public?/api/" })},
			{name: "on a connection", a: get, tcp: true}}},
		{"url_path exact ignores query", "urlPath: {path: {exact: /api/v1/items}}", "any: true", []row{
			{name: "query stripped", a: get, allowed: true, policy: "p"}}},
		{"uri_template one segment", `uriTemplate: {name: envoy.path.match.uri_template.uri_template_matcher, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/api/*/items"}}`, "any: true", []row{
			{name: "one segment", a: get, allowed: true, policy: "p"},
			{name: "two segments", a: with(get, func(a *Attributes) { a.Path = "/api/v1/x/items" })},
			{name: "no segment", a: with(get, func(a *Attributes) { a.Path = "/api//items" })}}},
		{"uri_template any segments", `uriTemplate: {name: t, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/api/**"}}`, "any: true", []row{
			{name: "deep", a: get, allowed: true, policy: "p"},
			{name: "none after the slash", a: with(get, func(a *Attributes) { a.Path = "/api/" }), allowed: true, policy: "p"},
			{name: "other root", a: with(get, func(a *Attributes) { a.Path = "/apx/v1" })}}},
		{"uri_template suffix", `uriTemplate: {name: t, typedConfig: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, pathTemplate: "/**/items"}}`, "any: true", []row{
			{name: "deep", a: get, allowed: true, policy: "p"},
			{name: "other tail", a: with(get, func(a *Attributes) { a.Path = "/api/v1/things" })}}},
		{"destination ip and port", "andRules: {rules: [{destinationIp: {addressPrefix: 10.0.0.0, prefixLen: 24}}, {destinationPort: 8080}]}", "any: true", []row{
			{name: "match", a: get, allowed: true, policy: "p"},
			{name: "match on a connection", a: get, tcp: true, allowed: true, policy: "p"},
			{name: "other port", a: with(get, func(a *Attributes) { a.DestinationPort = 9090 })},
			{name: "other ip", a: with(get, func(a *Attributes) { a.DestinationIP = ip("10.0.1.2") })}}},
		{"destination port range", "destinationPortRange: {start: 8000, end: 8080}", "any: true", []row{
			{name: "end excluded", a: get},
			{name: "in", a: with(get, func(a *Attributes) { a.DestinationPort = 8000 }), allowed: true, policy: "p"}}},
		{"sni", "requestedServerName: {suffix: .svc.cluster.local}", "any: true", []row{
			{name: "match", a: with(get, func(a *Attributes) { a.SNI = "web.default.svc.cluster.local" }), tcp: true, allowed: true, policy: "p"},
			{name: "no sni", a: get, tcp: true}}},
		{"authenticated principal", "any: true", "authenticated: {principalName: {exact: " + alice + "}}", []row{
			{name: "alice", a: with(get, func(a *Attributes) { a.SourcePrincipal = alice }), allowed: true, policy: "p"},
			{name: "bob", a: with(get, func(a *Attributes) { a.SourcePrincipal = "spiffe://cluster.local/ns/default/sa/bob" })},
			{name: "plaintext", a: get}}},
		{"authenticated any peer", "any: true", "authenticated: {}", []row{
			{name: "mTLS", a: with(get, func(a *Attributes) { a.SourcePrincipal = alice }), allowed: true, policy: "p"},
			{name: "plaintext", a: get}}},
		{"namespace regex (Istio's source.namespace)", "any: true", "authenticated: {principalName: {safeRegex: {regex: '.*/ns/default/.*'}}}", []row{
			{name: "default", a: with(get, func(a *Attributes) { a.SourcePrincipal = alice }), allowed: true, policy: "p"},
			{name: "other namespace", a: with(get, func(a *Attributes) { a.SourcePrincipal = "spiffe://cluster.local/ns/prod/sa/x" })}}},
		{"source ip (direct)", "any: true", "orIds: {ids: [{directRemoteIp: {addressPrefix: 10.0.0.0, prefixLen: 8}}, {sourceIp: {addressPrefix: 192.168.1.1}}]}", []row{
			{name: "direct peer", a: get, allowed: true, policy: "p"},
			{name: "XFF does not count", a: with(get, func(a *Attributes) { a.SourceIP = ip("172.16.0.1"); a.Headers = hdr("X-Forwarded-For", "10.1.1.1") })},
			{name: "source_ip exact", a: with(get, func(a *Attributes) { a.SourceIP = ip("192.168.1.1") }), allowed: true, policy: "p"}}},
		{"remote ip (XFF, no trusted hops)", "any: true", "remoteIp: {addressPrefix: 1.2.3.0, prefixLen: 24}", []row{
			{name: "last XFF entry", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Forwarded-For", "9.9.9.9, 1.2.3.4") }), allowed: true, policy: "p"},
			{name: "earlier XFF entry only", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Forwarded-For", "1.2.3.4, 9.9.9.9") })},
			{name: "last of several header lines", a: with(get, func(a *Attributes) { a.Headers = hdr("X-Forwarded-For", "9.9.9.9", "X-Forwarded-For", "1.2.3.5") }), allowed: true, policy: "p"},
			{name: "no XFF: the peer", a: with(get, func(a *Attributes) { a.SourceIP = ip("1.2.3.9") }), allowed: true, policy: "p"},
			{name: "unparsable XFF: the peer", a: with(get, func(a *Attributes) { a.SourceIP = ip("1.2.3.9"); a.Headers = hdr("X-Forwarded-For", "junk") }), allowed: true, policy: "p"}}},
		{"metadata jwt claims (Istio's request.auth.claims[groups])", "any: true", `metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: groups}], value: {orMatch: {valueMatchers: [{listMatch: {oneOf: {stringMatch: {exact: admin}}}}, {stringMatch: {exact: admin}}]}}}`, []row{
			{name: "list holds it", a: with(get, func(a *Attributes) { a.JWTPayload = map[string]any{"groups": []any{"dev", "admin"}} }), allowed: true, policy: "p"},
			{name: "string claim", a: with(get, func(a *Attributes) { a.JWTPayload = map[string]any{"groups": "admin"} }), allowed: true, policy: "p"},
			{name: "list without it", a: with(get, func(a *Attributes) { a.JWTPayload = map[string]any{"groups": []any{"dev"}} })},
			{name: "no token", a: get}}},
		{"metadata request principal (iss and sub)", "any: true", `andIds: {ids: [{metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: iss}], value: {stringMatch: {exact: "https://issuer"}}}}, {metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: sub}], value: {stringMatch: {safeRegex: {regex: ".+"}}}}}]}`, []row{
			{name: "token", a: with(get, func(a *Attributes) { a.JWTPayload = map[string]any{"iss": "https://issuer", "sub": "u1"} }), allowed: true, policy: "p"},
			{name: "other issuer", a: with(get, func(a *Attributes) { a.JWTPayload = map[string]any{"iss": "https://other", "sub": "u1"} })},
			{name: "no token", a: get}}},
		{"metadata present, invert, nested", "any: true", `andIds: {ids: [{metadata: {filter: f, path: [{key: a}, {key: b}], value: {presentMatch: true}}}, {metadata: {filter: f, path: [{key: x}], value: {stringMatch: {exact: bad}}, invert: true}}]}`, []row{
			{name: "no metadata: a present matcher fails", a: get, allowed: false},
		}},
		{"not", "notRule: {urlPath: {path: {prefix: /admin}}}", "notId: {any: true}", []row{
			{name: "not any never matches", a: get}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := engine(t, "action: ALLOW\npolicies:\n  p:\n    permissions: [{"+c.perm+"}]\n    principals: [{"+c.prin+"}]\n")
			runRows(t, e, c.rows)
		})
	}
}

// TestMetadataNested reads nested dynamic metadata directly.
func TestMetadataNested(t *testing.T) {
	e := engine(t, `action: DENY
policies:
  p:
    permissions: [{any: true}]
    principals: [{metadata: {filter: f, path: [{key: a}, {key: b}], value: {presentMatch: true}}}]
`)
	in := base("GET", "h", "/").Input(false)
	in.Metadata.Set("f", "a", map[string]any{"b": 1.0})
	if allowed, p := e.Eval(&in); allowed || p != "p" {
		t.Errorf("nested present: allowed=%v policy=%q", allowed, p)
	}
	in.Metadata.Set("f", "a", "not an object")
	if allowed, _ := e.Eval(&in); !allowed {
		t.Error("a path through a non-object matched")
	}
}

// TestActions: ALLOW allows iff a policy matches, DENY denies iff one
// does, LOG never denies; an ALLOW engine without policies denies all
// (Istio's empty-spec ALLOW policy), a DENY one allows all; the first
// matching policy by name decides.
func TestActions(t *testing.T) {
	admin := base("GET", "h", "/admin/x")
	pub := base("GET", "h", "/public")
	pol := `policies:
  b-admin: {permissions: [{urlPath: {path: {prefix: /admin}}}], principals: [{any: true}]}
  a-admin-get: {permissions: [{andRules: {rules: [{urlPath: {path: {prefix: /admin}}}, {header: {name: ':method', stringMatch: {exact: GET}}}]}}], principals: [{any: true}]}
`
	runRows(t, engine(t, "action: ALLOW\n"+pol), []row{
		{name: "allow: matched (first by name)", a: admin, allowed: true, policy: "a-admin-get"},
		{name: "allow: none matched", a: pub}})
	runRows(t, engine(t, "action: DENY\n"+pol), []row{
		{name: "deny: matched", a: admin, policy: "a-admin-get"},
		{name: "deny: second policy", a: with(admin, func(a *Attributes) { a.Method = "POST" }), policy: "b-admin"},
		{name: "deny: none matched", a: pub, allowed: true}})
	runRows(t, engine(t, "action: LOG\n"+pol), []row{
		{name: "log: matched, allowed", a: admin, allowed: true, policy: "a-admin-get"},
		{name: "log: none", a: pub, allowed: true}})
	runRows(t, engine(t, "action: ALLOW\n"), []row{{name: "empty allow denies all", a: pub}})
	runRows(t, engine(t, "action: DENY\n"), []row{{name: "empty deny allows all", a: pub, allowed: true}})
	// Istio's rule for a policy without rules: never matches.
	never := "action: ALLOW\npolicies:\n  ns[foo]-policy[deny-all]-rule[0]: {permissions: [{notRule: {any: true}}], principals: [{notId: {any: true}}]}\n"
	runRows(t, engine(t, never), []row{{name: "allow nothing", a: pub}})
}

// TestAuthenticatedCertificate: Envoy's AuthenticatedMatcher reads every
// URI SAN, then every DNS SAN, then the subject of the peer certificate;
// a TLS peer without a certificate is authenticated with no principal.
func TestAuthenticatedCertificate(t *testing.T) {
	u1, _ := url.Parse("spiffe://td/ns/a/sa/first")
	u2, _ := url.Parse("spiffe://td/ns/a/sa/second")
	cert := &x509.Certificate{URIs: []*url.URL{u1, u2}, DNSNames: []string{"web.example.com"},
		Subject: pkix.Name{CommonName: "web", Organization: []string{"Example"}}}
	st := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	for _, c := range []struct {
		name, principal string
		want            bool
	}{
		{"first URI", "exact: spiffe://td/ns/a/sa/first", true},
		{"second URI", "exact: spiffe://td/ns/a/sa/second", true},
		{"DNS SAN", "exact: web.example.com", true},
		{"subject", "exact: 'CN=web,O=Example'", true},
		{"other", "exact: spiffe://td/ns/a/sa/third", false},
	} {
		e := engine(t, "action: ALLOW\npolicies:\n  p: {permissions: [{any: true}], principals: [{authenticated: {principalName: {"+c.principal+"}}}]}\n")
		in := base("GET", "h", "/").Input(false)
		in.Conn.TLS, in.Conn.PeerPrincipal = st, PeerPrincipal(st)
		if allowed, _ := e.Eval(&in); allowed != c.want {
			t.Errorf("%s: %v, want %v", c.name, allowed, c.want)
		}
	}
	any := engine(t, "action: ALLOW\npolicies:\n  p: {permissions: [{any: true}], principals: [{authenticated: {}}]}\n")
	in := base("GET", "h", "/").Input(false)
	in.Conn.TLS = &tls.ConnectionState{}
	if allowed, _ := any.Eval(&in); !allowed {
		t.Error("a TLS peer without a certificate is authenticated (Envoy: connection.ssl() is set)")
	}
}
