package httpproxy_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
)

// BenchmarkIstioMetrics is one request through the client sidecar's
// request path (handler to a loopback upstream and back, 1 KB answer)
// with the standard metrics and the metadata exchange off and on, in the
// same run: the difference is what the metrics cost a request.
func BenchmarkIstioMetrics(b *testing.B) {
	web := newBackend(b, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
	})
	m := newMesh(b, service("web", web)+vs(`  - route: [{destination: {host: web}}]
`))
	metrics, err := istiometrics.New(istiometrics.Options{Self: model.Proxy{Type: model.Sidecar, Name: "client",
		Namespace: "default", Labels: map[string]string{"app": "client", "version": "v1"}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
			m.shared.Metrics = metrics
		}
		// A fresh request each time, as on the wire: the exchange headers
		// are new keys in its header map.
		b.Run(name+"-fresh-request", func(b *testing.B) {
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				req := httptest.NewRequest("GET", "http://web:8080/", nil)
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
		b.Run(name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req := httptest.NewRequest("GET", "http://web:8080/", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
