package httpproxy_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/anypb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// withStats edits the generated listeners' istio.stats filters: each gets
// pc, or is removed when pc is nil.
func withStats(t testing.TB, pc *stats.PluginConfig) func(*xdsgen.Resources) {
	return func(res *xdsgen.Resources) {
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					if f.Name != xdsgen.HTTPConnectionManagerFilter {
						continue
					}
					var m hcm.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
						t.Fatal(err)
					}
					var out []*hcm.HttpFilter
					for _, hf := range m.HttpFilters {
						if hf.Name == xdsgen.StatsFilter {
							if pc == nil {
								continue
							}
							a, _ := anypb.New(pc)
							hf.ConfigType = &hcm.HttpFilter_TypedConfig{TypedConfig: a}
						}
						out = append(out, hf)
					}
					m.HttpFilters = out
					a, _ := anypb.New(&m)
					f.GetTypedConfig().Value = a.Value
				}
			}
		}
	}
}

// withMetrics gives the mesh's handler standard metrics configured with
// its runtime's stats configs, as the proxy does on each push.
func withMetrics(t testing.TB, m *mesh) *istiometrics.Metrics {
	metrics, err := istiometrics.New(istiometrics.Options{Self: model.Proxy{Type: model.Sidecar, Name: "client",
		Namespace: "default", Labels: map[string]string{"app": "client"}}})
	if err != nil {
		t.Fatal(err)
	}
	metrics.Configure(m.rt.StatsConfigs())
	m.shared.Metrics = metrics
	return metrics
}

func series(t *testing.T, metrics *istiometrics.Metrics, name string) []map[string]string {
	t.Helper()
	fams, err := metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			out = append(out, labelMap(mt))
		}
	}
	return out
}

func labelMap(mt *dto.Metric) map[string]string {
	got := map[string]string{}
	for _, lp := range mt.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	return got
}

// TestStatsFilterOverrides: requests through the connection manager are
// recorded with its stats filter's overrides: a header dimension, a
// removed tag, a dropped metric.
func TestStatsFilterOverrides(t *testing.T) {
	web := newBackend(t, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	m := newMeshEdited(t, service("web", web)+vs("  - route: [{destination: {host: web}}]\n"), withStats(t, &stats.PluginConfig{
		Metrics: []*stats.MetricConfig{
			{Name: "requests_total", Dimensions: map[string]string{"user": "request.headers['x-user']", "path": "request.url_path"},
				TagsToRemove: []string{"response_flags"}},
			{Name: "request_bytes", Drop: true},
		}}))
	metrics := withMetrics(t, m)
	for _, u := range []string{"alice", "bob", "alice"} {
		if a := m.do("GET", "web:8080", "/items", nil, map[string]string{"X-User": u}); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
	}
	got := series(t, metrics, "istio_requests_total")
	users := map[string]bool{}
	for _, s := range got {
		users[s["user"]] = true
		if s["path"] != "/items" || s["response_flags"] != "" || s["destination_service"] != "web.default.svc.cluster.local" {
			t.Errorf("series %v", s)
		}
	}
	if len(got) != 2 || !users["alice"] || !users["bob"] {
		t.Errorf("want one series per user, got %v", got)
	}
	if s := series(t, metrics, "istio_request_bytes"); len(s) != 0 {
		t.Errorf("dropped request_bytes recorded: %v", s)
	}
	if s := series(t, metrics, "istio_response_bytes"); len(s) != 1 || s[0]["response_flags"] != "-" {
		t.Errorf("response_bytes: %v", s)
	}
}

// TestNoStatsFilterNoMetrics: a connection manager without the stats
// filter records nothing (the metadata exchange still runs).
func TestNoStatsFilterNoMetrics(t *testing.T) {
	web := newBackend(t, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	m := newMeshEdited(t, service("web", web)+vs("  - route: [{destination: {host: web}}]\n"), withStats(t, nil))
	metrics := withMetrics(t, m)
	if a := m.do("GET", "web:8080", "/", nil, nil); a.status != 200 {
		t.Fatalf("status %d", a.status)
	}
	if s := series(t, metrics, "istio_requests_total"); len(s) != 0 {
		t.Errorf("recorded without the filter: %v", s)
	}
}

// BenchmarkIstioMetricsOverrides is BenchmarkIstioMetrics' request
// (with an X-User header) through a connection manager whose stats
// config has no overrides, and through one that adds a header dimension
// and removes a tag: the difference is what the overrides cost.
func BenchmarkIstioMetricsOverrides(b *testing.B) {
	web := newBackend(b, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1024))
	})
	for _, bc := range []struct {
		name string
		pc   *stats.PluginConfig
	}{
		{"no-overrides", &stats.PluginConfig{}},
		{"header-dimension", &stats.PluginConfig{Metrics: []*stats.MetricConfig{{
			Dimensions: map[string]string{"user": "request.headers['x-user']"}, TagsToRemove: []string{"response_flags"}}}}},
	} {
		m := newMeshEdited(b, service("web", web)+vs("  - route: [{destination: {host: web}}]\n"), withStats(b, bc.pc))
		withMetrics(b, m)
		b.Run(bc.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req := httptest.NewRequest("GET", "http://web:8080/", nil)
			req.Header.Set("X-User", "alice")
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
