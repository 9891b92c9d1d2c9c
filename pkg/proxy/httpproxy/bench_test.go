package httpproxy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discard is a reusable ResponseWriter, so the benchmark counts the
// request path's allocations and not a recorder's.
type discard struct {
	h    http.Header
	code int
}

func (w *discard) Header() http.Header         { return w.h }
func (w *discard) Write(p []byte) (int, error) { return len(p), nil }
func (w *discard) WriteHeader(code int)        { w.code = code }

// BenchmarkRouteResilience measures one request through the request path
// (handler to loopback upstream and back, 1 KB answer) per route policy,
// against a route with no policy at all, in the same run. The upstream's
// and the transport's own allocations are included in every variant.
func BenchmarkRouteResilience(b *testing.B) {
	web := newBackend(b, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
	})
	m := newMesh(b, service("web", web)+vs(`  - match: [{uri: {prefix: /none}}]
    retries: {attempts: 0}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /pertry}}]
    timeout: 5s
    retries: {attempts: 2, perTryTimeout: 2s, retryOn: 5xx}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /fault0}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 0.0001}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirror0}}]
    mirror: {host: web}
    mirrorPercentage: {value: 0.0001}
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
`))
	payload := bytes.Repeat([]byte("p"), 1024)
	for _, bc := range []struct{ name, method, path string }{
		{"no-policy", "GET", "/none"},
		{"istio-default-retry", "GET", "/default"},
		{"per-try-timeout", "GET", "/pertry"},
		{"fault-not-firing", "GET", "/fault0"},
		{"mirror-not-firing", "GET", "/mirror0"},
		{"no-policy-POST-1KiB", "POST", "/none"},
		{"istio-default-retry-POST-1KiB", "POST", "/default"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req := httptest.NewRequest(bc.method, "http://web:8080"+bc.path, nil)
			rd := bytes.NewReader(payload)
			body := io.NopCloser(rd)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				if bc.method == "POST" {
					rd.Reset(payload)
					req.Body, req.ContentLength = body, int64(len(payload))
				}
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
