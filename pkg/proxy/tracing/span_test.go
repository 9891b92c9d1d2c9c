package tracing

import (
	"net/http"
	"strings"
	"testing"
	"time"

	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// startWith compiles a zipkin block with z's options and starts a span
// for a request with headers h; it returns the headers passed upstream.
func startWith(t *testing.T, z *tracecfg.ZipkinConfig, sampling float64, noProp bool, h map[string]string) (http.Header, Span) {
	t.Helper()
	c, err := Compile(&hcm.HttpConnectionManager_Tracing{Provider: provider(t, Zipkin, z), RandomSampling: &typev3.Percent{Value: sampling},
		NoContextPropagation: noProp}, true)
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(EnvOptions{NodeID: "n", ServiceCluster: "s"})
	t.Cleanup(func() { env.Shutdown(t.Context()) })
	r, _ := http.NewRequest("GET", "http://web/", nil)
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r.Header, c.Start(env, r, time.Now(), "op")
}

// TestPropagation: zipkin's USE_B3_WITH_W3C_PROPAGATION reads a W3C
// context when no B3 one came and writes both; no_context_propagation
// writes nothing; 64-bit trace ids when trace_id_128bit is false.
func TestPropagation(t *testing.T) {
	z := istioZipkin()
	z.TraceContextOption = tracecfg.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
	h, sp := startWith(t, z, 100, false, map[string]string{"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if !sp.Recording() || h.Get("X-B3-Traceid") != "4bf92f3577b34da6a3ce929d0e0e4736" || h.Get("X-B3-Parentspanid") != "00f067aa0ba902b7" ||
		!strings.HasPrefix(h.Get("Traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(h.Get("Traceparent"), "-01") {
		t.Errorf("B3+W3C: %v", h)
	}
	h, _ = startWith(t, istioZipkin(), 100, true, map[string]string{"X-B3-Traceid": "4bf92f3577b34da6a3ce929d0e0e4736", "X-B3-Spanid": "00f067aa0ba902b7"})
	if h.Get("X-B3-Spanid") != "00f067aa0ba902b7" || h.Get("X-B3-Sampled") != "" {
		t.Errorf("no_context_propagation changed the headers: %v", h)
	}
	z64 := istioZipkin()
	z64.TraceId_128Bit = false
	h, _ = startWith(t, z64, 100, false, nil)
	if tid := h.Get("X-B3-Traceid"); !strings.HasPrefix(tid, "0000000000000000") || tid == strings.Repeat("0", 32) {
		t.Errorf("64-bit trace id %q", tid)
	}
	// An incoming context without a decision: the proxy decides (0%).
	h, sp = startWith(t, istioZipkin(), 0, false, map[string]string{"X-B3-Traceid": "4bf92f3577b34da6a3ce929d0e0e4736", "X-B3-Spanid": "00f067aa0ba902b7"})
	if sp.Recording() || h.Get("X-B3-Sampled") != "0" || h.Get("X-B3-Traceid") != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("deferred decision: recording %v, %v", sp.Recording(), h)
	}
	// x-envoy-force-trace samples whatever the percentage.
	if _, sp = startWith(t, istioZipkin(), 0, false, map[string]string{"X-Envoy-Force-Trace": "true"}); !sp.Recording() {
		t.Error("x-envoy-force-trace not sampled")
	}
}
