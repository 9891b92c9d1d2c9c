package httpproxy_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// BenchmarkTracing measures one request through the sidecar's outbound
// connection manager (to a loopback upstream, 1 KB answer) without
// tracing, with Istio's tracing block and no provider (the decorator
// only), and with a zipkin provider at random sampling 0% and 100%. The
// spans of the 100% case are exported by the batch processor, off the
// request path, to a real collector.
func BenchmarkTracing(b *testing.B) {
	web := newBackend(b, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
	})
	sink := &spanSink{}
	col := zipkinCollector(b, sink)
	zipkin := &meshv1alpha1.MeshConfig{EnableTracing: true, DefaultConfig: &meshv1alpha1.ProxyConfig{Tracing: &meshv1alpha1.Tracing{
		Tracer: &meshv1alpha1.Tracing_Zipkin_{Zipkin: &meshv1alpha1.Tracing_Zipkin{Address: "zipkin.default:8080"}},
	}}}
	sampling := func(v float64) func(*xdsgen.Resources) {
		return func(res *xdsgen.Resources) {
			editTracing(b, res, func(tr *hcm.HttpConnectionManager_Tracing) { tr.RandomSampling = &typev3.Percent{Value: v} })
		}
	}
	yaml := service("web", web) + service("zipkin", col)
	for _, bc := range []struct {
		name string
		mc   *meshv1alpha1.MeshConfig
		edit func(*xdsgen.Resources)
	}{
		{"off", &meshv1alpha1.MeshConfig{EnableTracing: false}, nil},
		{"no-provider", &meshv1alpha1.MeshConfig{EnableTracing: true}, nil},
		{"zipkin-sampling-0", zipkin, sampling(0)},
		{"zipkin-sampling-100", zipkin, sampling(100)},
	} {
		m := newMeshConfigured(b, bc.mc, yaml, bc.edit)
		b.Run(bc.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "http://web:8080/bench", nil)
				clear(w.h)
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
