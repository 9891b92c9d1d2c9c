package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// oneProvider is Istio's single-rule config around p.
func oneProvider(p *jwtv3.JwtProvider) *jwtv3.JwtAuthentication { return istioConfig(p) }

// TestExtraction: the token in a header with a prefix, a query
// parameter, a cookie, and Envoy's defaults; forward false removes a
// header token only (Envoy never edits the query or cookies).
func TestExtraction(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	tok := key.sign(t, claims(iss))
	custom := istioProvider(iss, jwks(t, key.jwk()))
	custom.FromHeaders = []*jwtv3.JwtHeader{{Name: "x-jwt-assertion", ValuePrefix: "Token "}, {Name: "x-raw"}}
	custom.FromParams = []string{"jwt"}
	custom.FromCookies = []string{"session"}
	fCustom := compiled(t, oneProvider(custom))
	fDefault := compiled(t, oneProvider(istioProvider(iss, jwks(t, key.jwk()))))
	kept := istioProvider(iss, jwks(t, key.jwk()))
	kept.Forward = true
	fKept := compiled(t, oneProvider(kept))

	type check struct {
		name    string
		f       any
		target  string
		hdr     map[string]string
		verify  bool   // a token was found and verified (payload in metadata)
		removed string // header expected gone afterwards
		kept    string // header expected still there
	}
	cases := []check{
		{name: "custom header with prefix", f: fCustom, target: "/", hdr: map[string]string{"X-Jwt-Assertion": "Token " + tok}, verify: true, removed: "X-Jwt-Assertion"},
		{name: "prefix found inside the value", f: fCustom, target: "/", hdr: map[string]string{"X-Jwt-Assertion": "a=1, Token \"" + tok + "\";"}, verify: true},
		{name: "header without prefix", f: fCustom, target: "/", hdr: map[string]string{"X-Raw": tok}, verify: true, removed: "X-Raw"},
		{name: "wrong prefix: no token", f: fCustom, target: "/", hdr: map[string]string{"X-Jwt-Assertion": "Bearer " + tok}, kept: "X-Jwt-Assertion"},
		{name: "Authorization is not looked at when locations are set", f: fCustom, target: "/", hdr: map[string]string{"Authorization": "Bearer " + tok}, kept: "Authorization"},
		{name: "query parameter", f: fCustom, target: "/?a=b&jwt=" + tok, verify: true},
		{name: "cookie", f: fCustom, target: "/", hdr: map[string]string{"Cookie": "a=b; session=" + tok}, verify: true, kept: "Cookie"},
		{name: "default: Authorization Bearer", f: fDefault, target: "/", hdr: map[string]string{"Authorization": "Bearer " + tok}, verify: true, removed: "Authorization"},
		{name: "default: access_token parameter", f: fDefault, target: "/p?access_token=" + tok, verify: true},
		{name: "default: other parameter ignored", f: fDefault, target: "/p?token=" + tok},
		{name: "forward true keeps the header", f: fKept, target: "/", hdr: map[string]string{"Authorization": "Bearer " + tok}, verify: true, kept: "Authorization"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest("GET", tc.target, nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		res := runReq(tc.f.(httpfilter.Filter), req)
		if res.answered {
			t.Errorf("%s: answered %d %q", tc.name, res.code, res.body)
			continue
		}
		_, got := res.meta[Name]["payload"]
		if got != tc.verify {
			t.Errorf("%s: verified=%v, want %v", tc.name, got, tc.verify)
		}
		if tc.removed != "" && req.Header.Get(tc.removed) != "" {
			t.Errorf("%s: %s not removed", tc.name, tc.removed)
		}
		if tc.kept != "" && req.Header.Get(tc.kept) == "" {
			t.Errorf("%s: %s removed", tc.name, tc.kept)
		}
	}
	// The query keeps its token after verification, as in Envoy.
	req := httptest.NewRequest("GET", "/?jwt="+tok, nil)
	runReq(fCustom, req)
	if !strings.Contains(req.URL.RawQuery, tok) {
		t.Error("the query parameter was edited")
	}
	// A bad token in a cookie fails like any other.
	res := run(t, fCustom, "/", map[string]string{"Cookie": "session=x.y.z"})
	if !res.answered || res.code != 401 {
		t.Errorf("bad cookie token: %v %d", res.answered, res.code)
	}
}

// TestOutputs: forward_payload_header, claim_to_headers (Envoy's value
// forms) and the sanitizing of both against forged request headers.
func TestOutputs(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	p := istioProvider(iss, jwks(t, key.jwk()))
	p.ForwardPayloadHeader = "x-jwt-payload"
	p.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{
		{HeaderName: "x-sub", ClaimName: "sub"},
		{HeaderName: "x-n", ClaimName: "n"},
		{HeaderName: "x-f", ClaimName: "f"},
		{HeaderName: "x-admin", ClaimName: "admin"},
		{HeaderName: "x-groups", ClaimName: "groups"},
		{HeaderName: "x-team", ClaimName: "org.team"},
		{HeaderName: "x-none", ClaimName: "absent"},
	}
	f := compiled(t, oneProvider(p))
	tok := key.sign(t, claims(iss, "n", 42, "f", 1.5, "admin", true, "groups", []any{"g1", "g2"},
		"org", map[string]any{"team": "blue"}))
	forged := map[string]string{"Authorization": "Bearer " + tok, "X-Jwt-Payload": "forged", "X-Sub": "mallory", "X-None": "forged"}
	res := run(t, f, "/", forged)
	if res.answered {
		t.Fatalf("answered %d %q", res.code, res.body)
	}
	h := res.req.Header
	want := map[string]string{"X-Sub": "alice", "X-N": "42", "X-F": "1.500000", "X-Admin": "true", "X-Team": "blue",
		"X-Groups": base64.StdEncoding.EncodeToString([]byte(`["g1","g2"]`))}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if _, ok := h["X-None"]; ok {
		t.Error("a forged header for a missing claim was kept")
	}
	payload := h.Values("X-Jwt-Payload")
	if len(payload) != 1 || payload[0] != strings.Split(tok, ".")[1] {
		t.Fatalf("payload header %q", payload)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(payload[0])
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m["sub"] != "alice" {
		t.Errorf("payload header does not decode to the payload: %s", raw)
	}
	// Without a token (allowed), the forged headers are still removed.
	delete(forged, "Authorization")
	res = run(t, f, "/", forged)
	for _, k := range []string{"X-Jwt-Payload", "X-Sub", "X-None"} {
		if res.req.Header.Get(k) != "" {
			t.Errorf("no token: forged %s kept", k)
		}
	}
}

// TestCORSPreflightBypass: Istio sets bypass_cors_preflight; a preflight
// passes whatever its token.
func TestCORSPreflightBypass(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": istioProvider(iss, jwks(t, key.jwk()))},
		Rules: []*jwtv3.RequirementRule{prefixRule("/", providerReq("p"))}, BypassCorsPreflight: true}
	f := compiled(t, c)
	req := httptest.NewRequest("OPTIONS", "/", nil)
	req.Header.Set("Origin", "https://app")
	req.Header.Set("Access-Control-Request-Method", "GET")
	res := runReq(f, req)
	if res.answered || res.stats.CORSPreflightBypassed.Load() != 1 {
		t.Errorf("preflight: answered=%v bypassed=%d", res.answered, res.stats.CORSPreflightBypassed.Load())
	}
	req = httptest.NewRequest("OPTIONS", "/", nil)
	req.Header.Set("Origin", "https://app")
	if res := runReq(f, req); !res.answered || res.code != 401 {
		t.Errorf("OPTIONS without Access-Control-Request-Method is not a preflight: %v %d", res.answered, res.code)
	}
}

// TestLocalJWKSSources: inline_bytes and filename.
func TestLocalJWKSSources(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	keys := jwks(t, key.jwk())
	file := t.TempDir() + "/jwks.json"
	if err := writeFile(file, keys); err != nil {
		t.Fatal(err)
	}
	for name, ds := range map[string]*core.DataSource{
		"inline_bytes": {Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte(keys)}},
		"filename":     {Specifier: &core.DataSource_Filename{Filename: file}},
	} {
		p := istioProvider(iss, "")
		p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: ds}
		f := compiled(t, oneProvider(p))
		if res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + key.sign(t, claims(iss))}); res.answered || res.meta == nil {
			t.Errorf("%s: %d %q", name, res.code, res.body)
		}
	}
	p := istioProvider(iss, "")
	p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: file + ".missing"}}}
	if _, err := (factory{}).NewFilter(mustAny(t, oneProvider(p))); err == nil {
		t.Error("a missing JWKS file was accepted")
	}
}
