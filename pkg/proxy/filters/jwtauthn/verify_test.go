package jwtauthn

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
)

const iss = "https://issuer.example.com"

// TestIstioShape runs the config Istio generates for one jwtRule
// ({origins-0, allow_missing} on "/") against tokens signed in the test.
func TestIstioShape(t *testing.T) {
	key := newSigner(t, jose.RS256, "k1")
	other := newSigner(t, jose.RS256, "k1") // same kid, different key
	f := compiled(t, istioConfig(istioProvider(iss, jwks(t, key.jwk()), "svc-a", "https://svc-b/")))
	now := time.Now().Unix()
	cases := []struct {
		name   string
		token  string
		code   int // 0: passes
		body   string
		errHdr bool // www-authenticate carries error="invalid_token"
	}{
		{name: "valid", token: key.sign(t, claims(iss, "aud", "svc-a"))},
		{name: "audience sanitized (scheme, slash)", token: key.sign(t, claims(iss, "aud", []any{"x", "http://svc-b"}))},
		{name: "missing: allowed", token: ""},
		{name: "invalid signature", token: other.sign(t, claims(iss, "aud", "svc-a")), code: 401, body: "Jwt verification fails", errHdr: true},
		{name: "expired", token: key.sign(t, claims(iss, "aud", "svc-a", "exp", now-61-5)), code: 401, body: "Jwt is expired", errHdr: true},
		{name: "expired within the 60 s clock skew", token: key.sign(t, claims(iss, "aud", "svc-a", "exp", now-30))},
		{name: "not yet valid", token: key.sign(t, claims(iss, "aud", "svc-a", "nbf", now+120)), code: 401, body: "Jwt not yet valid", errHdr: true},
		{name: "nbf within the clock skew", token: key.sign(t, claims(iss, "aud", "svc-a", "nbf", now+30))},
		{name: "wrong issuer", token: key.sign(t, claims("https://other", "aud", "svc-a")), code: 401, body: "Jwt issuer is not configured", errHdr: true},
		{name: "wrong audience", token: key.sign(t, claims(iss, "aud", "svc-c")), code: 403, body: "Audiences in Jwt are not allowed", errHdr: true},
		{name: "no audience", token: key.sign(t, claims(iss)), code: 403, body: "Audiences in Jwt are not allowed", errHdr: true},
		{name: "not a JWT", token: "deadbeef", code: 401, body: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", errHdr: true},
		{name: "kid not in the JWKS", token: newSigner(t, jose.RS256, "k2").sign(t, claims(iss, "aud", "svc-a")), code: 401,
			body: "Jwks doesn't have key to match kid or alg from Jwt", errHdr: true},
		{name: "alg not the key's", token: newSigner(t, jose.RS384, "k1").sign(t, claims(iss, "aud", "svc-a")), code: 401,
			body: "Jwks doesn't have key to match kid or alg from Jwt", errHdr: true},
		{name: "exp not a number", token: key.sign(t, claims(iss, "aud", "svc-a", "exp", "soon")), code: 401,
			body: "Jwt payload [exp] field is not an integer", errHdr: true},
		{name: "alg none", token: "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.c2ln", code: 401, body: "Jwt header [alg] is not supported", errHdr: true},
	}
	for _, tc := range cases {
		hdr := map[string]string{}
		if tc.token != "" {
			hdr["Authorization"] = "Bearer " + tc.token
		}
		res := run(t, f, "http://svc.example/api?x=1", hdr)
		if tc.code == 0 {
			if res.answered {
				t.Errorf("%s: answered %d %q", tc.name, res.code, res.body)
			}
			continue
		}
		if !res.answered || res.code != tc.code || res.body != tc.body+"\n" {
			t.Errorf("%s: answered=%v %d %q, want %d %q", tc.name, res.answered, res.code, res.body, tc.code, tc.body)
			continue
		}
		want := `Bearer realm="http://svc.example/api?x=1"`
		if tc.errHdr {
			want += `, error="invalid_token"`
		}
		if got := res.header.Get("Www-Authenticate"); got != want {
			t.Errorf("%s: www-authenticate %q, want %q", tc.name, got, want)
		}
		if res.stats.Denied.Load() != 1 || res.stats.Allowed.Load() != 0 {
			t.Errorf("%s: stats allowed %d denied %d", tc.name, res.stats.Allowed.Load(), res.stats.Denied.Load())
		}
	}
}

// TestValidTokenEffects: the verified token is removed (forward false),
// the payload lands in the metadata with scope split as Istio asks.
func TestValidTokenEffects(t *testing.T) {
	key := newSigner(t, jose.ES256, "e1")
	f := compiled(t, istioConfig(istioProvider(iss, jwks(t, key.jwk()))))
	tok := key.sign(t, claims(iss, "scope", "read  write", "groups", []any{"g1", "g2"}))
	res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + tok})
	if res.answered {
		t.Fatalf("answered %d %q", res.code, res.body)
	}
	if res.req.Header.Get("Authorization") != "" {
		t.Error("forward false: the Authorization header was not removed")
	}
	p, ok := res.meta[Name]["payload"].(map[string]any)
	if !ok {
		t.Fatalf("no payload in metadata: %#v", res.meta)
	}
	if p["iss"] != iss || p["sub"] != "alice" {
		t.Errorf("payload %v", p)
	}
	if sc, _ := p["scope"].([]any); len(sc) != 2 || sc[0] != "read" || sc[1] != "write" {
		t.Errorf("scope not split on spaces: %#v", p["scope"])
	}
	if g, _ := p["groups"].([]any); len(g) != 2 || g[1] != "g2" {
		t.Errorf("groups %#v", p["groups"])
	}
	if res.stats.Allowed.Load() != 1 {
		t.Errorf("allowed %d", res.stats.Allowed.Load())
	}
}

// TestIstioSamples: Istio's sample JWKS and tokens (security/tools/jwt/
// samples), as the istio.io tasks use them.
func TestIstioSamples(t *testing.T) {
	const sampleIss = "testing@secure.istio.io"
	keys := readTestdata(t, "istio-jwks.json")
	f := compiled(t, istioConfig(istioProvider(sampleIss, keys)))
	for _, name := range []string{"istio-demo.jwt", "istio-groups-scope.jwt"} {
		tok := strings.TrimSpace(readTestdata(t, name))
		res := run(t, f, "/headers", map[string]string{"Authorization": "Bearer " + tok})
		if res.answered {
			t.Fatalf("%s: answered %d %q", name, res.code, res.body)
		}
		p := res.meta[Name]["payload"].(map[string]any)
		if p["iss"] != sampleIss || p["sub"] != sampleIss {
			t.Errorf("%s: payload %v", name, p)
		}
		if name == "istio-groups-scope.jwt" {
			if g, _ := p["groups"].([]any); len(g) != 2 || g[0] != "group1" {
				t.Errorf("groups %#v", p["groups"])
			}
		}
		// A flipped signature byte fails.
		i := strings.LastIndexByte(tok, '.') + 5
		bad := tok[:i] + string("AB"[boolInt(tok[i] == 'A')]) + tok[i+1:]
		res = run(t, f, "/headers", map[string]string{"Authorization": "Bearer " + bad})
		if !res.answered || res.code != 401 || res.body != "Jwt verification fails\n" {
			t.Errorf("%s tampered: %v %d %q", name, res.answered, res.code, res.body)
		}
	}
	// The conformance cases' invalid token.
	res := run(t, f, "/headers", map[string]string{"Authorization": "Bearer deadbeef"})
	if !res.answered || res.code != 401 {
		t.Errorf("deadbeef: %v %d", res.answered, res.code)
	}
	// Another issuer's JWKS does not verify Istio's token.
	other := newSigner(t, jose.RS256, "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ")
	f2 := compiled(t, istioConfig(istioProvider(sampleIss, jwks(t, other.jwk()))))
	res = run(t, f2, "/", map[string]string{"Authorization": "Bearer " + strings.TrimSpace(readTestdata(t, "istio-demo.jwt"))})
	if !res.answered || res.body != "Jwt verification fails\n" {
		t.Errorf("wrong JWKS: %v %q", res.answered, res.body)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAlgorithms: every algorithm family Envoy verifies, with the keys
// in one JWKS, and HS256 with an oct key.
func TestAlgorithms(t *testing.T) {
	var signers []*signer
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS512} {
		signers = append(signers, newSigner(t, alg, "kid-"+string(alg)))
	}
	var keys []jose.JSONWebKey
	for _, s := range signers {
		keys = append(keys, s.jwk())
	}
	f := compiled(t, istioConfig(istioProvider(iss, jwks(t, keys...))))
	for _, s := range signers {
		res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + s.sign(t, claims(iss))})
		if res.answered {
			t.Errorf("%s: %d %q", s.alg, res.code, res.body)
		}
	}
	// A key without kid or alg is tried for any token.
	k := newSigner(t, jose.ES256, "")
	bare := k.jwk()
	bare.Algorithm = ""
	f = compiled(t, istioConfig(istioProvider(iss, jwks(t, bare))))
	if res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + k.sign(t, claims(iss))}); res.answered {
		t.Errorf("bare key: %d %q", res.code, res.body)
	}
}

// TestInvalidJWKS: Envoy accepts the config and fails every token of the
// provider closed.
func TestInvalidJWKS(t *testing.T) {
	key := newSigner(t, jose.RS256, "k1")
	for _, keys := range []string{`not json`, `{"keys":[]}`, `{"keys":[{"kty":"RSA","n":"AQAB"}]}`, `{}`} {
		f := compiled(t, istioConfig(istioProvider(iss, keys)))
		res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + key.sign(t, claims(iss))})
		if !res.answered || res.code != 401 || res.body != "Jwks doesn't have any valid public key\n" {
			t.Errorf("%s: %v %d %q", keys, res.answered, res.code, res.body)
		}
		if res := run(t, f, "/", nil); res.answered {
			t.Errorf("%s: a request without token is still allowed by allow_missing", keys)
		}
	}
	// One bad key among good ones is skipped.
	f := compiled(t, istioConfig(istioProvider(iss, `{"keys":[{"kty":"XX"},`+jwks(t, key.jwk())[9:])))
	if res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + key.sign(t, claims(iss))}); res.answered {
		t.Errorf("good key after a bad one: %d %q", res.code, res.body)
	}
}

// TestRequirements: the verifier tree's semantics, as Envoy's verifier.cc.
func TestRequirements(t *testing.T) {
	a, b := newSigner(t, jose.RS256, "a"), newSigner(t, jose.ES256, "b")
	pa, pb := istioProvider("iss-a", jwks(t, a.jwk())), istioProvider("iss-b", jwks(t, b.jwk()))
	tokA, tokB := a.sign(t, claims("iss-a")), b.sign(t, claims("iss-b"))
	badA := newSigner(t, jose.RS256, "a").sign(t, claims("iss-a")) // iss-a's kid and alg, the wrong key
	unknown := a.sign(t, claims("iss-x"))
	two := func(req *jwtv3.JwtRequirement) *jwtv3.JwtAuthentication {
		return &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"a": pa, "b": pb},
			Rules: []*jwtv3.RequirementRule{prefixRule("/open", nil), prefixRule("/", req)}}
	}
	allowFailed := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissingOrFailed{}}
	cases := []struct {
		name  string
		cfg   *jwtv3.JwtAuthentication
		path  string
		token string
		want  string // "" passes, else the body
	}{
		{"provider: valid", two(providerReq("a")), "/", tokA, ""},
		{"provider: missing", two(providerReq("a")), "/", "", "Jwt is missing"},
		{"provider: other issuer", two(providerReq("a")), "/", tokB, "Jwt issuer is not configured"},
		{"rule without requires", two(providerReq("a")), "/open/x", "", ""},
		{"rule without requires ignores bad tokens", two(providerReq("a")), "/open", "garbage", ""},
		{"any: either", two(anyOf(providerReq("a"), providerReq("b"))), "/", tokB, ""},
		{"any: invalid beats unknown issuer", two(anyOf(providerReq("a"), providerReq("b"))), "/", badA, "Jwt verification fails"},
		{"any: unknown issuer beats missing", two(anyOf(providerReq("a"), providerReq("b"))), "/", unknown, "Jwt issuer is not configured"},
		{"any+allow_missing: missing passes", two(anyOf(providerReq("a"), allowMissing)), "/", "", ""},
		{"any+allow_missing: invalid fails", two(anyOf(providerReq("a"), allowMissing)), "/", badA, "Jwt verification fails"},
		{"any+allow_missing: unknown issuer fails", two(anyOf(providerReq("a"), allowMissing)), "/", unknown, "Jwt issuer is not configured"},
		// a verifies and removes the token (forward false): b finds none.
		{"all: both needed", two(allOf(providerReq("a"), providerReq("b"))), "/", tokA, "Jwt is missing"},
		{"all: other order", two(allOf(providerReq("b"), providerReq("a"))), "/", tokA, "Jwt issuer is not configured"},
		{"allow_missing alone: valid", two(allowMissing), "/", tokB, ""},
		{"allow_missing alone: invalid fails", two(allowMissing), "/", badA, "Jwt verification fails"},
		{"allow_missing alone: unknown issuer fails", two(allowMissing), "/", unknown, "Jwt issuer is not configured"},
		{"allow_missing_or_failed: invalid passes", two(allowFailed), "/", badA, ""},
		{"audiences of the requirement", two(&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderAndAudiences{
			ProviderAndAudiences: &jwtv3.ProviderWithAudiences{ProviderName: "a", Audiences: []string{"x"}}}}), "/", tokA, "Audiences in Jwt are not allowed"},
		// Istio's shape for two jwtRules.
		{"istio two rules: first", istioConfig(pa, pb), "/", tokA, ""},
		{"istio two rules: second", istioConfig(pa, pb), "/", tokB, ""},
		{"istio two rules: missing", istioConfig(pa, pb), "/", "", ""},
		{"istio two rules: invalid", istioConfig(pa, pb), "/", badA, "Jwt verification fails"},
		{"istio two rules: unknown issuer", istioConfig(pa, pb), "/", unknown, "Jwt issuer is not configured"},
	}
	for _, tc := range cases {
		f := compiled(t, tc.cfg)
		hdr := map[string]string{}
		if tc.token != "" {
			hdr["Authorization"] = "Bearer " + tc.token
		}
		res := run(t, f, tc.path, hdr)
		got := ""
		if res.answered {
			got = strings.TrimSuffix(res.body, "\n")
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestTwoTokens: every token must verify; one bad token among good ones
// fails the request (Envoy's rule against smuggling a bad token).
func TestTwoTokens(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	p := istioProvider(iss, jwks(t, key.jwk()))
	p.FromHeaders = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
	p.FromParams = []string{"token"}
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": p},
		Rules: []*jwtv3.RequirementRule{prefixRule("/", providerReq("p"))}}
	f := compiled(t, c)
	good := key.sign(t, claims(iss))
	if res := run(t, f, "/?token="+good, map[string]string{"Authorization": "Bearer " + good}); res.answered {
		t.Errorf("two good tokens: %q", res.body)
	}
	if res := run(t, f, "/?token=bad", map[string]string{"Authorization": "Bearer " + good}); !res.answered {
		t.Error("a bad token beside a good one passed")
	}
}

// TestCachedTokenStillChecked: a token whose signature was verified
// before (verified-token cache) still has its claims checked per
// requirement and request.
func TestCachedTokenStillChecked(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	p := istioProvider(iss, jwks(t, key.jwk()))
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": p}, Rules: []*jwtv3.RequirementRule{
		prefixRule("/a", providerReq("p")),
		prefixRule("/b", &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderAndAudiences{
			ProviderAndAudiences: &jwtv3.ProviderWithAudiences{ProviderName: "p", Audiences: []string{"x"}}}}),
	}}
	f := compiled(t, c)
	tok := key.sign(t, claims(iss, "aud", "y"))
	for i := 0; i < 2; i++ {
		if res := run(t, f, "/a", map[string]string{"Authorization": "Bearer " + tok}); res.answered {
			t.Fatalf("/a round %d: %d %q", i, res.code, res.body)
		}
	}
	if f.(*filter).cfg.providers["p"].verified.get(tok) == nil {
		t.Fatal("the verified token was not cached")
	}
	// Each run has fresh counters: the second request was a hit.
	if res := run(t, f, "/a", map[string]string{"Authorization": "Bearer " + tok}); res.stats.JwtCacheHit.Load() != 1 || res.stats.JwtCacheMiss.Load() != 0 {
		t.Errorf("cache hit %d miss %d", res.stats.JwtCacheHit.Load(), res.stats.JwtCacheMiss.Load())
	}
	if res := run(t, f, "/b", map[string]string{"Authorization": "Bearer " + tok}); !res.answered || res.code != 403 {
		t.Errorf("/b with a cached token of another audience: %v %d", res.answered, res.code)
	}
	// The metadata of a cached token is the request's own copy.
	r1 := run(t, f, "/a", map[string]string{"Authorization": "Bearer " + tok})
	r1.meta[Name]["payload"].(map[string]any)["sub"] = "changed"
	r2 := run(t, f, "/a", map[string]string{"Authorization": "Bearer " + tok})
	if r2.meta[Name]["payload"].(map[string]any)["sub"] != "alice" {
		t.Error("requests share the payload map")
	}
}

// TestConcurrentRequests: one compiled filter serves concurrent requests
// with shared and distinct tokens (run with -race).
func TestConcurrentRequests(t *testing.T) {
	key := newSigner(t, jose.ES256, "k")
	f := compiled(t, istioConfig(istioProvider(iss, jwks(t, key.jwk()))))
	toks := []string{key.sign(t, claims(iss)), key.sign(t, claims(iss, "x", 1)), key.sign(t, claims(iss, "x", 2))}
	done := make(chan string)
	for g := 0; g < 8; g++ {
		go func() {
			msg := ""
			for i := 0; i < 50 && msg == ""; i++ {
				res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + toks[(g+i)%len(toks)]})
				if res.answered || res.meta[Name]["payload"].(map[string]any)["sub"] != "alice" {
					msg = "request failed"
				}
			}
			done <- msg
		}()
	}
	for g := 0; g < 8; g++ {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
}

// TestParseStatuses: Envoy's parse errors of a token's header and claims.
func TestParseStatuses(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	cases := map[string]Status{
		key.sign(t, claims(iss, "aud", nil)):                StatusOk,
		key.sign(t, claims(iss, "aud", []any{"a", 1})):      JwtPayloadParseErrorAudNotString,
		key.sign(t, map[string]any{"iss": iss, "aud": nil}): JwtPayloadParseErrorAudNotString,
		key.sign(t, claims(iss, "iss", 7)):                  JwtPayloadParseErrorIssNotString,
		key.sign(t, claims(iss, "sub", true)):               JwtPayloadParseErrorSubNotString,
		key.sign(t, claims(iss, "iat", "x")):                JwtPayloadParseErrorIatNotInteger,
		key.sign(t, claims(iss, "nbf", -1)):                 JwtPayloadParseErrorNbfOutOfRange,
		key.sign(t, claims(iss, "jti", 1)):                  JwtPayloadParseErrorJtiNotString,
		"a.b":                                               JwtBadFormat,
		"e30..e30.c2ln":                                     JwtHeaderBadAlg, // empty sections are skipped, as absl::SkipEmpty
		"a.b.c.d":                                           JwtBadFormat,
		"e30.e30.c2ln":                                      JwtHeaderBadAlg,
		"eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.c2ln":          JwtHeaderBadKid,
		"eyJhbGciOiJSUzI1NiJ9.W10.c2ln":                     JwtPayloadParseErrorBadJSON,
		"eyJhbGciOiJSUzI1NiJ9.e30.!!":                       JwtSignatureParseErrorBadBase64,
		"eyJhbGciOiJSUzI1NiJ9.!!.c2ln":                      JwtPayloadParseErrorBadBase64,
		"!!.e30.c2ln":                                       JwtHeaderParseErrorBadBase64,
	}
	for tok, want := range cases {
		if _, got := parseToken(tok); got != want {
			t.Errorf("%.40s: %v, want %v", tok, got, want)
		}
	}
}

// TestX509JWKS: Envoy's x509 form of a JWKS (kid -> PEM certificate).
func TestX509JWKS(t *testing.T) {
	key := newSigner(t, jose.RS256, "cert-1")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.pub, key.priv)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keys, _ := json.Marshal(map[string]string{"cert-1": pemText})
	f := compiled(t, istioConfig(istioProvider(iss, string(keys))))
	if res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + key.sign(t, claims(iss))}); res.answered {
		t.Errorf("x509 JWKS: %d %q", res.code, res.body)
	}
	other := newSigner(t, jose.RS256, "cert-1")
	if res := run(t, f, "/", map[string]string{"Authorization": "Bearer " + other.sign(t, claims(iss))}); !res.answered || res.body != "Jwt verification fails\n" {
		t.Errorf("x509 JWKS, other key: %v %q", res.answered, res.body)
	}
}

// TestMissingRequired: a required token that is missing is 401 "Jwt is
// missing" with a WWW-Authenticate naming no error (Envoy's onComplete),
// the realm being the request's URI (scheme from x-forwarded-proto, path
// cut at 256 bytes).
func TestMissingRequired(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": istioProvider(iss, jwks(t, key.jwk()))},
		Rules: []*jwtv3.RequirementRule{prefixRule("/", providerReq("p"))}}
	f := compiled(t, c)
	long := "/" + strings.Repeat("a", 300)
	res := run(t, f, "http://app.test"+long+"?q=1", map[string]string{"X-Forwarded-Proto": "https"})
	want := `Bearer realm="https://app.test` + long[:256] + `"`
	if !res.answered || res.code != 401 || res.body != "Jwt is missing\n" || res.header.Get("Www-Authenticate") != want {
		t.Errorf("%v %d %q %q", res.answered, res.code, res.body, res.header.Get("Www-Authenticate"))
	}
	if res.stats.Denied.Load() != 1 {
		t.Errorf("denied %d", res.stats.Denied.Load())
	}
}
