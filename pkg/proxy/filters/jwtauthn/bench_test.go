package jwtauthn

import (
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// BenchmarkValidRS256 is one request with a valid RS256 token (2048-bit
// key) through Istio's single-rule config: extraction, parse, signature,
// claims, the token's removal and the payload in the metadata.
func BenchmarkValidRS256(b *testing.B) {
	key := newSigner(b, jose.RS256, "k1")
	f := compiled(b, istioConfig(istioProvider(iss, jwks(b, key.jwk()), "svc")))
	hv := []string{"Bearer " + key.sign(b, claims(iss, "aud", "svc", "scope", "a b"))}
	req := httptest.NewRequest("GET", "/api", nil)
	scope := httpfilter.NewScope()
	ls := scope.Listener("bench")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		req.Header["Authorization"] = hv
		s := &httpfilter.Stream{W: w, R: req, Listener: ls, Proxy: scope}
		if f.Decode(s) != httpfilter.Continue || s.Metadata == nil {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkNoToken is the common case of Istio's allow_missing: a request
// without a token.
func BenchmarkNoToken(b *testing.B) {
	key := newSigner(b, jose.RS256, "k1")
	f := compiled(b, istioConfig(istioProvider(iss, jwks(b, key.jwk()), "svc")))
	req := httptest.NewRequest("GET", "/api", nil)
	scope := httpfilter.NewScope()
	ls := scope.Listener("bench")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		s := &httpfilter.Stream{W: w, R: req, Listener: ls, Proxy: scope}
		if f.Decode(s) != httpfilter.Continue {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkValidRS256Uncached is BenchmarkValidRS256 with a token the
// filter has not verified before on every request (more distinct tokens
// than the verified-token cache holds, visited in turn): the signature
// check and the parse each time.
func BenchmarkValidRS256Uncached(b *testing.B) {
	key := newSigner(b, jose.RS256, "k1")
	f := compiled(b, istioConfig(istioProvider(iss, jwks(b, key.jwk()), "svc")))
	toks := make([][]string, verifiedCacheSize+76)
	for i := range toks {
		toks[i] = []string{"Bearer " + key.sign(b, claims(iss, "aud", "svc", "jti", string(rune('a'+i%26))+string(rune(i))))}
	}
	req := httptest.NewRequest("GET", "/api", nil)
	scope := httpfilter.NewScope()
	ls := scope.Listener("bench")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.Header["Authorization"] = toks[i%len(toks)]
		i++
		s := &httpfilter.Stream{W: w, R: req, Listener: ls, Proxy: scope}
		if f.Decode(s) != httpfilter.Continue || s.Metadata == nil {
			b.Fatal("not allowed")
		}
	}
}
