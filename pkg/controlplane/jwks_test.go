package controlplane

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/model"
)

func requestAuthn(name, issuer, uri string) string {
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: %s, namespace: default}
spec:
  jwtRules: [{issuer: %q, jwksUri: %q}]
`, name, issuer, uri)
}

// pushedJwks is the key set the newest push context inlines for issuer.
func (r *running) pushedJwks(issuer, uri string) (string, error) {
	return r.c.push.Load().LocalJwks(&securityv1beta1.JWTRule{Issuer: issuer, JwksUri: uri})
}

// TestJwksFetchedAndRefreshed: the control plane fetches a jwksUri over
// HTTPS (trusted through JwksCAPEM) for the push context; when a refresh
// finds new keys, a push goes through the one debouncer with the new keys.
func TestJwksFetchedAndRefreshed(t *testing.T) {
	var mu sync.Mutex
	keys := `{"keys":[{"kty":"oct","kid":"a","k":"AAAA"}]}`
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, keys)
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "authn.yaml", requestAuthn("jwt", "https://issuer", srv.URL+"/keys"))
	r = startWith(t, Options{ConfigDir: dir, Debounce: DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second}, JwksCAPEM: ca})
	if got, err := r.pushedJwks("https://issuer", srv.URL+"/keys"); err != nil || got != keys {
		t.Fatalf("pushed JWKS %q, %v", got, err)
	}
	before := r.c.pushes.Load()
	mu.Lock()
	keys = `{"keys":[{"kty":"oct","kid":"b","k":"BBBB"}]}`
	want := keys
	mu.Unlock()
	r.c.jwks.Refresh(context.Background())
	waitUntil(t, "a push with the new keys", func() error {
		if got, _ := r.pushedJwks("https://issuer", srv.URL+"/keys"); got != want {
			return fmt.Errorf("pushed %q", got)
		}
		return nil
	})
	if rec := r.status(t).LastPush; r.c.pushes.Load() != before+1 || !strings.Contains(strings.Join(rec.Reasons, ","), "jwks") {
		t.Errorf("%d pushes after the refresh (want 1), reasons %v", r.c.pushes.Load()-before, rec.Reasons)
	}
}

// TestJwksUnreachableFailsClosed: a jwksUri nobody serves is inlined as
// Istio's public-only JWKS (no token of the issuer verifies), logged as a
// WARN and listed in /debug/status.
func TestJwksUnreachableFailsClosed(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uri := "http://" + lis.Addr().String() + "/keys"
	lis.Close()
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "authn.yaml", requestAuthn("jwt", "https://down", uri))
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	got, err := r.pushedJwks("https://down", uri)
	if err == nil || got != model.PublicOnlyJwks {
		t.Fatalf("pushed %q, %v: want the public-only JWKS and the error", got, err)
	}
	st := r.status(t)
	if len(st.JwksFailures) != 1 || st.JwksFailures[0].JwksURI != uri || st.JwksFailures[0].Error == "" {
		t.Errorf("jwks_failures %+v", st.JwksFailures)
	}
	if n := len(r.log.lines("level=WARN", "JWKS fetch failed", "https://down")); n != 1 {
		t.Errorf("%d WARN lines for the failed fetch", n)
	}
}
