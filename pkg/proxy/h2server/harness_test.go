package h2server_test

// The harness runs every test against two servers: net/http's HTTP/2
// server, which proves the test, and h2server, which the test then holds to
// the same outcome. kinds lists them; h2kind_test.go adds "h2server".

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// kinds are the servers every test runs against.
var kinds = []string{"net/http"}

// starters start a server of each kind.
var starters = map[string]func(t testing.TB, h http.Handler, cfg config) *testServer{
	"net/http": startNetHTTP,
}

// config is what a test asks of a server, whatever its kind.
type config struct {
	MaxConcurrentStreams           uint32
	MaxHeaderBytes                 int
	IdleTimeout, ReadHeaderTimeout time.Duration
	// TLS serves h2 over TLS (ALPN "h2") with testCert.
	TLS bool
}

// testServer is a running server.
type testServer struct {
	Addr string
	// Shutdown is the graceful shutdown; it returns when the server has
	// finished (or ctx ended).
	Shutdown func(ctx context.Context)
	Close    func()
}

// startServer starts a server of kind serving h on 127.0.0.1, shut down
// when the test ends.
func startServer(t testing.TB, kind string, h http.Handler, cfg config) *testServer {
	t.Helper()
	start, ok := starters[kind]
	if !ok {
		t.Fatalf("no server kind %q", kind)
	}
	return start(t, h, cfg)
}

// forKinds runs f as a subtest per server kind.
func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func startNetHTTP(t testing.TB, h http.Handler, cfg config) *testServer {
	lis := listen(t)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		Protocols:         &p,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(cfg.MaxConcurrentStreams)},
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if cfg.TLS {
		srv.TLSConfig = serverTLSConfig()
		go srv.ServeTLS(lis, "", "")
	} else {
		go srv.Serve(lis)
	}
	ts := &testServer{
		Addr:     lis.Addr().String(),
		Shutdown: func(ctx context.Context) { srv.Shutdown(ctx) },
		Close:    func() { srv.Close() },
	}
	t.Cleanup(ts.Close)
	return ts
}

// h2Transport is an h2c (prior knowledge) client, or with TLS an h2 one
// trusting testCert.
func h2Transport(cfg config) *http2.Transport {
	if cfg.TLS {
		return &http2.Transport{TLSClientConfig: clientTLSConfig()}
	}
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
}

// client is an HTTP client over a fresh h2Transport, closed when the test
// ends.
func client(t testing.TB, cfg config) *http.Client {
	tr := h2Transport(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// url is the URL of path on ts.
func (ts *testServer) url(cfg config, path string) string {
	if cfg.TLS {
		return "https://" + ts.Addr + path
	}
	return "http://" + ts.Addr + path
}

var (
	certOnce sync.Once
	testCert tls.Certificate
	certPool *x509.CertPool
)

// makeCert makes a self-signed ECDSA certificate for 127.0.0.1.
func makeCert() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "h2server test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	certPool = x509.NewCertPool()
	certPool.AddCert(cert)
}

func serverTLSConfig() *tls.Config {
	certOnce.Do(makeCert)
	return &tls.Config{Certificates: []tls.Certificate{testCert}, NextProtos: []string{"h2"}}
}

func clientTLSConfig() *tls.Config {
	certOnce.Do(makeCert)
	return &tls.Config{RootCAs: certPool, NextProtos: []string{"h2"}}
}

// dumpRequest is the request as a handler sees it, canonically: method,
// URL, RequestURI, Host, Proto, sorted headers, ContentLength, the body
// read and whether an error (not EOF) ended it, and the trailers after
// it. The body is read here.
func dumpRequest(r *http.Request) string {
	body, err := io.ReadAll(r.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "method=%q url=%q uri=%q host=%q proto=%q %d.%d\n",
		r.Method, r.URL.String(), r.RequestURI, r.Host, r.Proto, r.ProtoMajor, r.ProtoMinor)
	fmt.Fprintf(&b, "header=%s\n", sortedHeader(r.Header))
	fmt.Fprintf(&b, "contentLength=%d\n", r.ContentLength)
	fmt.Fprintf(&b, "body=%q bodyErr=%v\n", body, err != nil)
	fmt.Fprintf(&b, "trailer=%s\n", sortedHeader(r.Trailer))
	return b.String()
}

// sortedHeader is h with its keys sorted.
func sortedHeader(h http.Header) string {
	if h == nil {
		return "nil"
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q:%q ", k, h[k])
	}
	return b.String()
}

// dumpHandler answers with dumpRequest.
func dumpHandler(w http.ResponseWriter, r *http.Request) {
	d := dumpRequest(r)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, d)
}

// within fails the test if ch does not deliver within d.
func within[T any](t testing.TB, d time.Duration, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
