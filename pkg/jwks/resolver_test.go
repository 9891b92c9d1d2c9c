package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is a JWKS of one fresh public key.
func keySet(t *testing.T, kid string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jwksServer is a real HTTPS server serving a JWKS that tests swap, and
// an OpenID discovery document pointing at it.
type jwksServer struct {
	*httptest.Server
	mu    sync.Mutex
	body  string
	gets  atomic.Int32
	caPEM []byte
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": s.URL, "jwks_uri": s.URL + "/keys"})
		case "/keys":
			s.gets.Add(1)
			s.mu.Lock()
			defer s.mu.Unlock()
			io.WriteString(w, s.body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	return s
}

func (s *jwksServer) set(body string) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func newResolver(t *testing.T, opts Options) *Resolver {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 10 * time.Millisecond
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFetchAndCache: a jwksUri over HTTPS (server trusted through the
// extra roots) is fetched once and then served from the cache.
func TestFetchAndCache(t *testing.T) {
	want := keySet(t, "a")
	srv := newJWKSServer(t, want)
	r := newResolver(t, Options{ExtraRootsPEM: srv.caPEM})
	for range 3 {
		got, err := r.Jwks("https://issuer", srv.URL+"/keys", time.Second)
		if err != nil || got != want {
			t.Fatalf("Jwks = %q, %v", got, err)
		}
	}
	if n := srv.gets.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (cached)", n)
	}
	if f := r.Failures(); len(f) != 0 {
		t.Errorf("failures %v", f)
	}
}

// TestOpenIDDiscovery: with no jwksUri the issuer's discovery document
// names it.
func TestOpenIDDiscovery(t *testing.T) {
	want := keySet(t, "a")
	srv := newJWKSServer(t, want)
	r := newResolver(t, Options{ExtraRootsPEM: srv.caPEM})
	got, err := r.Jwks(srv.URL+"/", "", time.Second)
	if err != nil || got != want {
		t.Fatalf("Jwks = %q, %v", got, err)
	}
}

// TestUntrustedServer: without the test CA the system roots do not trust
// the server: a failure, reported.
func TestUntrustedServer(t *testing.T) {
	srv := newJWKSServer(t, keySet(t, "a"))
	r := newResolver(t, Options{})
	if _, err := r.Jwks("https://issuer", srv.URL+"/keys", time.Second); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
	if f := r.Failures(); len(f) != 1 || f[0].Issuer != "https://issuer" {
		t.Errorf("failures %v", f)
	}
}

// TestRejectsBadContent: not a JWKS, an error status, or larger than the
// limit: failures.
func TestRejectsBadContent(t *testing.T) {
	srv := newJWKSServer(t, `{"nokeys": []}`)
	r := newResolver(t, Options{ExtraRootsPEM: srv.caPEM, MaxBytes: 64})
	if _, err := r.Jwks("a", srv.URL+"/keys", time.Second); err == nil || !strings.Contains(err.Error(), "keys") {
		t.Errorf("no keys: err = %v", err)
	}
	if _, err := r.Jwks("b", srv.URL+"/missing", time.Second); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: err = %v", err)
	}
	srv.set(`{"keys": [` + strings.Repeat(`{}, `, 40) + `{}]}`)
	if _, err := r.Jwks("c", srv.URL+"/keys", time.Second); err == nil || !strings.Contains(err.Error(), "larger than 64 bytes") {
		t.Errorf("too large: err = %v", err)
	}
}

// TestRefreshChangesKeys: a refresh that finds new keys calls OnChange
// (the control plane's push) once; one that finds the same keys, with
// another formatting and order, does not.
func TestRefreshChangesKeys(t *testing.T) {
	first := keySet(t, "a")
	srv := newJWKSServer(t, first)
	var pushes atomic.Int32
	r := newResolver(t, Options{ExtraRootsPEM: srv.caPEM, OnChange: func() { pushes.Add(1) }})
	if _, err := r.Jwks("iss", srv.URL+"/keys", time.Second); err != nil {
		t.Fatal(err)
	}
	var indented map[string]any
	json.Unmarshal([]byte(first), &indented)
	same, _ := json.MarshalIndent(indented, "", "    ")
	srv.set(string(same))
	if failed := r.Refresh(context.Background()); failed || pushes.Load() != 0 {
		t.Fatalf("same keys: failed %v, %d pushes", failed, pushes.Load())
	}
	second := keySet(t, "b")
	srv.set(second)
	if failed := r.Refresh(context.Background()); failed || pushes.Load() != 1 {
		t.Fatalf("new keys: failed %v, %d pushes", failed, pushes.Load())
	}
	if got, _ := r.Jwks("iss", srv.URL+"/keys", time.Second); got != second {
		t.Errorf("after refresh Jwks = %q", got)
	}
}

// TestRunRefreshesPeriodically: Run refreshes on its interval.
func TestRunRefreshesPeriodically(t *testing.T) {
	srv := newJWKSServer(t, keySet(t, "a"))
	changed := make(chan struct{}, 1)
	r := newResolver(t, Options{ExtraRootsPEM: srv.caPEM, RefreshInterval: 50 * time.Millisecond,
		OnChange: func() { changed <- struct{}{} }})
	if _, err := r.Jwks("iss", srv.URL+"/keys", time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	srv.set(keySet(t, "b"))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5s")
	}
}

// TestUnreachableThenUp: a jwksUri nobody serves fails (the generator
// then fails closed) and is listed; the background retry fetches it once
// the server is up, and pushes.
func TestUnreachableThenUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	want := keySet(t, "a")
	changed := make(chan struct{}, 1)
	r := newResolver(t, Options{RetryInterval: 20 * time.Millisecond, OnChange: func() { changed <- struct{}{} }})
	if _, err := r.Jwks("iss", "http://"+addr+"/keys", 500*time.Millisecond); err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	if f := r.Failures(); len(f) != 1 || !strings.Contains(f[0].Error, "refused") {
		t.Fatalf("failures %v", f)
	}
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, want) })}
	go srv.Serve(lis)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no retry within 5s")
	}
	if got, err := r.Jwks("iss", "http://"+addr+"/keys", time.Second); err != nil || got != want {
		t.Errorf("after retry Jwks = %q, %v", got, err)
	}
	if f := r.Failures(); len(f) != 0 {
		t.Errorf("failures after retry %v", f)
	}
}

// TestBlocksMetadataAddresses: link-local (169.254.169.254, the cloud
// metadata endpoint) is refused before connecting.
func TestBlocksMetadataAddresses(t *testing.T) {
	r := newResolver(t, Options{})
	_, err := r.Jwks("iss", "http://169.254.169.254/keys", time.Second)
	if err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("err = %v, want blocked", err)
	}
}
