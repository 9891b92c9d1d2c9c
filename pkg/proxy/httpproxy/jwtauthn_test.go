package httpproxy_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// The jwt_authn filter through the real connection manager and router on
// a loopback listener, in front of real backends: the config is Istio's
// for one jwtRule (pilot/pkg/security/authn/policy_applier.go), added as
// the first HTTP filter of the generated connection manager, with the
// gateway's clear_route_cache so a claim header can choose the route.

const jwtIssuer = "https://issuer.test"

// jwtRoutes route requests whose x-jwt-group (a claim header) is admin
// to the admin service.
const jwtRoutes = `  - match: [{headers: {x-jwt-group: {exact: admin}}}]
    route: [{destination: {host: admin}}]
  - route: [{destination: {host: web}}]
`

// echoHeaders answers with the request headers the tests look at.
func echoHeaders(_ int64, w http.ResponseWriter, r *http.Request) {
	json.NewEncoder(w).Encode(map[string]string{
		"authorization": r.Header.Get("Authorization"), "payload": r.Header.Get("X-Jwt-Payload"),
		"group": r.Header.Get("X-Jwt-Group"),
	})
}

func jwtConfig(t *testing.T, keys string) *anypb.Any {
	t.Helper()
	p := &jwtv3.JwtProvider{
		Issuer: jwtIssuer, Audiences: []string{"web"}, PayloadInMetadata: "payload",
		ForwardPayloadHeader: "x-jwt-payload", ClearRouteCache: true,
		ClaimToHeaders:      []*jwtv3.JwtClaimToHeader{{HeaderName: "x-jwt-group", ClaimName: "group"}},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: keys}}},
	}
	c := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": p}, BypassCorsPreflight: true,
		Rules: []*jwtv3.RequirementRule{{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}},
		}},
	}
	a, err := anypb.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// withJWTFilter puts the jwt_authn filter first in every generated
// connection manager (Istio puts it before RBAC and the router).
func withJWTFilter(t *testing.T, cfg *anypb.Any) func(*xdsgen.Resources) {
	return func(res *xdsgen.Resources) {
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					var m hcm.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&m) != nil {
						continue
					}
					jf := &hcm.HttpFilter{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cfg}}
					m.HttpFilters = append([]*hcm.HttpFilter{jf}, m.HttpFilters...)
					a, err := anypb.New(&m)
					if err != nil {
						t.Fatal(err)
					}
					f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
				}
			}
		}
	}
}

func TestJWTAuthn(t *testing.T) {
	t.Parallel()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "RS256"}}})
	sign := func(claims map[string]any) string {
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims)
		obj, err := sg.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return s
	}
	now := time.Now().Unix()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iss": jwtIssuer, "sub": "alice", "aud": "web", "exp": now + 3600}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	web, admin := newBackend(t, "web", echoHeaders), newBackend(t, "admin", echoHeaders)
	m := newMeshEdited(t, service("web", web)+service("admin", admin)+vs(jwtRoutes), withJWTFilter(t, jwtConfig(t, string(keys))))

	user, boss := sign(claims("group", "users")), sign(claims("group", "admin"))
	cases := []struct {
		name, path string
		hdr        map[string]string
		status     int
		backend    string // who answered ("" for the proxy)
		body       string // the proxy's body
		group      string // x-jwt-group the backend saw
	}{
		{name: "no token: allowed", path: "/", status: 200, backend: "web"},
		{name: "valid token", path: "/", hdr: map[string]string{"Authorization": "Bearer " + user}, status: 200, backend: "web", group: "users"},
		{name: "claim header re-routes (clear_route_cache)", path: "/", hdr: map[string]string{"Authorization": "Bearer " + boss}, status: 200, backend: "admin", group: "admin"},
		{name: "forged claim header is removed", path: "/", hdr: map[string]string{"X-Jwt-Group": "admin"}, status: 200, backend: "web"},
		{name: "token in the query", path: "/?access_token=" + boss, status: 200, backend: "admin", group: "admin"},
		{name: "invalid signature", path: "/", hdr: map[string]string{"Authorization": "Bearer " + user[:len(user)-4] + "AAAA"}, status: 401, body: "Jwt verification fails"},
		{name: "expired", path: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(claims("exp", now-3600))}, status: 401, body: "Jwt is expired"},
		{name: "wrong issuer", path: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(claims("iss", "https://evil"))}, status: 401, body: "Jwt issuer is not configured"},
		{name: "wrong audience", path: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(claims("aud", "other"))}, status: 403, body: "Audiences in Jwt are not allowed"},
	}
	denied, allowed := 0, 0
	for _, tc := range cases {
		before := web.count.Load() + admin.count.Load()
		a := m.do("GET", "web:8080", tc.path, nil, tc.hdr)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d (%q)", tc.name, a.status, tc.status, a.body)
			continue
		}
		if tc.backend == "" {
			denied++
			if web.count.Load()+admin.count.Load() != before {
				t.Errorf("%s: a backend was reached", tc.name)
			}
			if a.body != tc.body+"\n" || !strings.HasPrefix(a.header.Get("Www-Authenticate"), `Bearer realm="http://web:8080/", error="invalid_token"`) {
				t.Errorf("%s: body %q, www-authenticate %q", tc.name, a.body, a.header.Get("Www-Authenticate"))
			}
			continue
		}
		allowed++
		if got := a.header.Get("X-Backend"); got != tc.backend {
			t.Errorf("%s: answered by %q, want %q", tc.name, got, tc.backend)
		}
		var seen map[string]string
		json.Unmarshal([]byte(a.body), &seen)
		if seen["group"] != tc.group || seen["authorization"] != "" {
			t.Errorf("%s: backend saw %v", tc.name, seen)
		}
		if (tc.group != "") != (seen["payload"] != "") {
			t.Errorf("%s: payload header %q", tc.name, seen["payload"])
		}
	}
	if d := statSuffix(t, m, ".jwt_authn.denied"); d != uint64(denied) {
		t.Errorf("jwt_authn.denied %d, want %d", d, denied)
	}
	if a := statSuffix(t, m, ".jwt_authn.allowed"); a != uint64(allowed) {
		t.Errorf("jwt_authn.allowed %d, want %d", a, allowed)
	}
}

// statSuffix is the one /stats counter whose name ends with suffix.
func statSuffix(t *testing.T, m *mesh, suffix string) uint64 {
	t.Helper()
	var b strings.Builder
	m.shared.Stats.WriteText(&b)
	var name string
	for _, line := range strings.Split(b.String(), "\n") {
		if k, _, ok := strings.Cut(line, ": "); ok && strings.HasSuffix(k, suffix) {
			if name != "" {
				t.Fatalf("two counters end with %s: %s, %s", suffix, name, k)
			}
			name = k
		}
	}
	if name == "" {
		t.Fatalf("no counter ends with %s in\n%s", suffix, b.String())
	}
	return m.stat(name)
}

// TestJWTAuthnIstioSample: Istio's sample JWKS and demo.jwt (the ones the
// istio.io tasks and the conformance cases use) through the connection
// manager, with Istio's provider for that jwtRule.
func TestJWTAuthnIstioSample(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		b, err := os.ReadFile("../filters/jwtauthn/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	cfg := &jwtv3.JwtAuthentication{}
	if err := jwtConfig(t, read("istio-jwks.json")).UnmarshalTo(cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers["origins-0"]
	p.Issuer, p.Audiences, p.ClaimToHeaders, p.ForwardPayloadHeader, p.ClearRouteCache = "testing@secure.istio.io", nil, nil, "", false
	a, _ := anypb.New(cfg)
	web := newBackend(t, "web", echoHeaders)
	m := newMeshEdited(t, service("web", web)+vs("  - route: [{destination: {host: web}}]\n"), withJWTFilter(t, a))
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"no token", "", 200},
		{"demo.jwt", "Bearer " + read("istio-demo.jwt"), 200},
		{"groups-scope.jwt", "Bearer " + read("istio-groups-scope.jwt"), 200},
		{"invalid token", "Bearer deadbeef", 401},
	} {
		hdr := map[string]string{}
		if tc.auth != "" {
			hdr["Authorization"] = tc.auth
		}
		ans := m.do("GET", "web:8080", "/headers", nil, hdr)
		if ans.status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, ans.status, ans.body, tc.status)
		}
		if ans.status == 200 && strings.Contains(ans.body, "Bearer") {
			t.Errorf("%s: the token reached the backend: %s", tc.name, ans.body)
		}
	}
}
