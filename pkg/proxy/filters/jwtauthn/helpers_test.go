package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// signer is a key generated for the test, its JWKS entry and a way to
// sign tokens with it (go-jose).
type signer struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv any
	pub  any
}

func newSigner(t testing.TB, alg jose.SignatureAlgorithm, kid string) *signer {
	t.Helper()
	s := &signer{alg: alg, kid: kid}
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		s.priv, s.pub = k, &k.PublicKey
	case jose.ES256, jose.ES384, jose.ES512:
		curve := map[jose.SignatureAlgorithm]elliptic.Curve{jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521()}[alg]
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.priv, s.pub = k, &k.PublicKey
	case jose.EdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.priv, s.pub = priv, pub
	case jose.HS256, jose.HS384, jose.HS512:
		k := make([]byte, 64)
		rand.Read(k)
		s.priv, s.pub = k, k
	default:
		t.Fatalf("alg %s", alg)
	}
	return s
}

// jwk is the signer's public key as a JWKS entry (with alg and kid).
func (s *signer) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.pub, KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"}
}

func jwks(t testing.TB, keys ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign makes a compact JWT of claims.
func (s *signer) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are a valid token's claims for issuer iss: an hour left.
func claims(iss string, extra ...any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"iss": iss, "sub": "alice", "iat": now, "exp": now + 3600}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
			continue
		}
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

// istioProvider is a JwtProvider as Istio's convertToEnvoyJwtConfig
// builds one from a JWTRule with inline jwks.
func istioProvider(iss, keys string, aud ...string) *jwtv3.JwtProvider {
	return &jwtv3.JwtProvider{
		Issuer: iss, Audiences: aud, PayloadInMetadata: "payload",
		NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"permission", "scope"}},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{
			Specifier: &core.DataSource_InlineString{InlineString: keys}}},
	}
}

func providerReq(name string) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
}

var allowMissing = &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}

func anyOf(rs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: rs}}}
}

func allOf(rs ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: rs}}}
}

func prefixRule(prefix string, req *jwtv3.JwtRequirement) *jwtv3.RequirementRule {
	r := &jwtv3.RequirementRule{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: prefix}}}
	if req != nil {
		r.RequirementType = &jwtv3.RequirementRule_Requires{Requires: req}
	}
	return r
}

// istioConfig is Istio's config for one or more jwtRules: providers
// origins-<i>, one rule on "/" ({P, allow_missing} for one provider, the
// outer OR with the inner AND for several), CORS preflights bypassed.
func istioConfig(ps ...*jwtv3.JwtProvider) *jwtv3.JwtAuthentication {
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, BypassCorsPreflight: true}
	var inner, outer []*jwtv3.JwtRequirement
	for i, p := range ps {
		name := "origins-" + string(rune('0'+i))
		c.Providers[name] = p
		inner = append(inner, anyOf(providerReq(name), allowMissing))
		outer = append(outer, providerReq(name))
	}
	if len(ps) == 1 {
		c.Rules = []*jwtv3.RequirementRule{prefixRule("/", inner[0])}
		return c
	}
	c.Rules = []*jwtv3.RequirementRule{prefixRule("/", anyOf(append(outer, allOf(inner...))...))}
	return c
}

func mustAny(t testing.TB, c *jwtv3.JwtAuthentication) *anypb.Any {
	t.Helper()
	a, err := anypb.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// compiled is a filter compiled from c as the connection manager does.
func compiled(t testing.TB, c *jwtv3.JwtAuthentication) httpfilter.Filter {
	t.Helper()
	f, err := factory{}.NewFilter(mustAny(t, c))
	if err != nil {
		t.Fatalf("config rejected: %v", err)
	}
	return f
}

// result is what one request through the filter gave.
type result struct {
	answered bool
	code     int
	body     string
	header   http.Header // the answer's
	req      *http.Request
	meta     httpfilter.Metadata
	stats    *Stats
}

// run sends one request through f with the given request headers.
func run(t testing.TB, f httpfilter.Filter, target string, hdr map[string]string) result {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return runReq(f, req)
}

func runReq(f httpfilter.Filter, req *http.Request) result {
	w := httptest.NewRecorder()
	scope := httpfilter.NewScope()
	s := &httpfilter.Stream{W: w, R: req, Listener: scope.Listener("test"), Proxy: scope}
	st := f.Decode(s)
	res := result{answered: st == httpfilter.Answered, req: req, meta: s.Metadata, stats: s.Listener.Filter(slot).(*Stats)}
	if res.answered {
		res.code, res.body, res.header = w.Code, w.Body.String(), w.Header()
	}
	return res
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o600) }
