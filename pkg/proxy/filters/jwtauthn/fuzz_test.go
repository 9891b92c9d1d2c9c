package jwtauthn

import (
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// FuzzDecode sends arbitrary Authorization values, query strings and
// cookies through Istio's config: the filter must answer or pass, never
// panic, and pass only a token that verifies or none at all.
func FuzzDecode(f *testing.F) {
	key := newSigner(f, jose.ES256, "k")
	good := key.sign(f, claims(iss))
	flt := compiled(f, istioConfig(istioProvider(iss, jwks(f, key.jwk()))))
	for _, s := range []string{"Bearer " + good, "Bearer deadbeef", "Bearer a.b.c", "Bearer " + good + "x", "Bearer", "Bearer ..",
		"eyJhbGciOiJFUzI1NiJ9.e30.", "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOm51bGx9.AAAA"} {
		f.Add(s, "access_token="+s, "c="+s)
	}
	f.Fuzz(func(t *testing.T, auth, query, cookie string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.RawQuery = query
		req.Header["Authorization"] = []string{auth}
		req.Header["Cookie"] = []string{cookie}
		w := httptest.NewRecorder()
		scope := httpfilter.NewScope()
		s := &httpfilter.Stream{W: w, R: req, Listener: scope.Listener("f"), Proxy: scope}
		if flt.Decode(s) == httpfilter.Answered {
			if w.Code != 401 && w.Code != 403 {
				t.Fatalf("answered %d", w.Code)
			}
			return
		}
		if s.Metadata != nil {
			p := s.Metadata[Name]["payload"].(map[string]any)
			if p["iss"] != iss {
				t.Fatalf("passed a token of issuer %v", p["iss"])
			}
		}
	})
}
