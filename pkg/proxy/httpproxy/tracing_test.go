package httpproxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// zipkinSpan is a Zipkin v2 JSON span as a collector receives it.
type zipkinSpan struct {
	TraceID       string                       `json:"traceId"`
	ID            string                       `json:"id"`
	ParentID      string                       `json:"parentId"`
	Name          string                       `json:"name"`
	Kind          string                       `json:"kind"`
	LocalEndpoint struct{ ServiceName string } `json:"localEndpoint"`
	Tags          map[string]string            `json:"tags"`
}

// spanSink collects what a collector received.
type spanSink struct {
	mu    sync.Mutex
	spans []zipkinSpan
	otlp  []*tracev1.Span
	posts int
}

func (s *spanSink) byTrace(traceID string) []zipkinSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []zipkinSpan
	for _, sp := range s.spans {
		if sp.TraceID == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// waitTrace waits for n spans of traceID.
func (s *spanSink) waitTrace(t *testing.T, traceID string, n int) []zipkinSpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.byTrace(traceID); len(got) >= n {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trace %s: %d spans arrived, want %d (all: %+v)", traceID, len(s.byTrace(traceID)), n, s.spans)
	return nil
}

// zipkinCollector is a Zipkin v2 collector (POST /api/v2/spans, JSON)
// filling sink, as a backend for service().
func zipkinCollector(t testing.TB, sink *spanSink) *backend {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spans []zipkinSpan
		if r.Method != "POST" || r.URL.Path != "/api/v2/spans" || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&spans) != nil {
			http.Error(w, "not a zipkin v2 post", 400)
			return
		}
		sink.mu.Lock()
		sink.spans = append(sink.spans, spans...)
		sink.posts++
		sink.mu.Unlock()
		w.WriteHeader(202)
	}))
	t.Cleanup(srv.Close)
	return &backend{name: "zipkin", srv: srv, port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

// sawTrace is a backend answering with the trace headers it received.
func sawTrace(_ int64, w http.ResponseWriter, r *http.Request) {
	for _, h := range []string{"X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "B3", "Traceparent", "Tracestate"} {
		if v, ok := r.Header[h]; ok {
			w.Header()["Saw-"+h] = v
		}
	}
	io.WriteString(w, "ok\n")
}

// zipkinMesh is a sidecar whose mesh config traces to a zipkin collector
// through MeshConfig defaultConfig.tracing (Istio's legacy path).
func zipkinMesh(t *testing.T, sampling float64) (*mesh, *spanSink) {
	sink := &spanSink{}
	col := zipkinCollector(t, sink)
	web := newBackend(t, "web", sawTrace)
	mc := &meshv1alpha1.MeshConfig{EnableTracing: true, DefaultConfig: &meshv1alpha1.ProxyConfig{Tracing: &meshv1alpha1.Tracing{
		Sampling: sampling,
		Tracer:   &meshv1alpha1.Tracing_Zipkin_{Zipkin: &meshv1alpha1.Tracing_Zipkin{Address: "zipkin.default:8080"}},
		CustomTags: map[string]*meshv1alpha1.Tracing_CustomTag{
			"my_tag": {Type: &meshv1alpha1.Tracing_CustomTag_Literal{Literal: &meshv1alpha1.Tracing_Literal{Value: "hello"}}},
			"hdr":    {Type: &meshv1alpha1.Tracing_CustomTag_Header{Header: &meshv1alpha1.Tracing_RequestHeader{Name: "x-custom", DefaultValue: "none"}}},
		},
	}}}
	return newMeshConfigured(t, mc, service("web", web)+service("zipkin", col), nil), sink
}

var hex32, hex16 = regexp.MustCompile(`^[0-9a-f]{32}$`), regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestZipkinSpans: a sidecar's outbound connection manager with the
// zipkin tracer makes a client span per request named after the route's
// decorator, with Envoy's tags and the custom ones; B3 headers reach the
// app and name that span; an incoming B3 context (multi or single header)
// is continued, its sampled decision honoured (0: propagated, nothing
// reported).
func TestZipkinSpans(t *testing.T) {
	m, sink := zipkinMesh(t, 100)
	a := m.do("GET", "web:8080", "/api/one", nil, map[string]string{"X-Request-Id": "req-1", "X-Custom": "blue"})
	tid, sid := a.header.Get("Saw-X-B3-Traceid"), a.header.Get("Saw-X-B3-Spanid")
	if a.status != 200 || !hex32.MatchString(tid) || !hex16.MatchString(sid) || a.header.Get("Saw-X-B3-Sampled") != "1" {
		t.Fatalf("app saw %v (status %d)", a.header, a.status)
	}
	if _, ok := a.header["Saw-X-B3-Parentspanid"]; ok {
		t.Errorf("a new trace has a parent span id: %v", a.header)
	}
	sp := sink.waitTrace(t, tid, 1)[0]
	if sp.ID != sid || sp.ParentID != "" || sp.Kind != "CLIENT" || sp.Name != "web.default.svc.cluster.local:8080/*" || sp.LocalEndpoint.ServiceName != "sluice" {
		t.Errorf("span %+v", sp)
	}
	for k, v := range map[string]string{
		"component": "proxy", "http.method": "GET", "http.status_code": "200", "guid:x-request-id": "req-1",
		"upstream_cluster": "outbound|8080||web.default.svc.cluster.local", "http.url": "http://web:8080/api/one",
		"http.protocol": "HTTP/1.1", "response_flags": "-", "my_tag": "hello", "hdr": "blue", "node_id": "sluice",
		"istio.canonical_service": "client", "istio.namespace": "default",
	} {
		if sp.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q (tags %v)", k, sp.Tags[k], v, sp.Tags)
		}
	}
	if _, ok := sp.Tags["error"]; ok {
		t.Errorf("error tag on a 200: %v", sp.Tags)
	}
	if st := m.shared.Tracing.Stats(tracing.Zipkin); st.SpansSent.Load() == 0 || st.ReportsSent.Load() == 0 || st.ReportsFailed.Load() != 0 {
		t.Errorf("tracing.zipkin stats: sent %d spans in %d reports, %d failed", st.SpansSent.Load(), st.ReportsSent.Load(), st.ReportsFailed.Load())
	}

	// An incoming sampled B3 context is continued: same trace, the
	// client's span as parent.
	const inTrace, inSpan = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	a = m.do("GET", "web:8080", "/api/two", nil, map[string]string{"X-B3-Traceid": inTrace, "X-B3-Spanid": inSpan, "X-B3-Sampled": "1"})
	if a.header.Get("Saw-X-B3-Traceid") != inTrace || a.header.Get("Saw-X-B3-Parentspanid") != inSpan || a.header.Get("Saw-X-B3-Spanid") == inSpan {
		t.Errorf("continued B3: app saw %v", a.header)
	}
	if sp := sink.waitTrace(t, inTrace, 1)[0]; sp.ParentID != inSpan || sp.Tags["hdr"] != "none" {
		t.Errorf("continued span %+v", sp)
	}

	// A single b3 header saying not sampled: propagated as not sampled,
	// nothing reported.
	const offTrace = "0af7651916cd43dd8448eb211c80319c"
	a = m.do("GET", "web:8080", "/api/three", nil, map[string]string{"B3": offTrace + "-b7ad6b7169203331-0"})
	if a.header.Get("Saw-X-B3-Traceid") != offTrace || a.header.Get("Saw-X-B3-Sampled") != "0" || a.header.Get("Saw-B3") != "" {
		t.Errorf("unsampled b3: app saw %v", a.header)
	}
	m.shared.Tracing.ForceFlush(context.Background())
	time.Sleep(300 * time.Millisecond)
	if got := sink.byTrace(offTrace); len(got) != 0 {
		t.Errorf("an unsampled trace was reported: %+v", got)
	}
}

// TestZipkinSamplingZero: random sampling 0 reports nothing and still
// passes the context on, marked not sampled.
func TestZipkinSamplingZero(t *testing.T) {
	sink := &spanSink{}
	col := zipkinCollector(t, sink)
	web := newBackend(t, "web", sawTrace)
	mc := &meshv1alpha1.MeshConfig{EnableTracing: true, DefaultConfig: &meshv1alpha1.ProxyConfig{Tracing: &meshv1alpha1.Tracing{
		Tracer: &meshv1alpha1.Tracing_Zipkin_{Zipkin: &meshv1alpha1.Tracing_Zipkin{Address: "zipkin.default:8080"}},
	}}}
	m := newMeshConfigured(t, mc, service("web", web)+service("zipkin", col), func(res *xdsgen.Resources) {
		editTracing(t, res, func(tr *hcm.HttpConnectionManager_Tracing) { tr.RandomSampling = &typev3.Percent{Value: 0} })
	})
	for i := range 20 {
		a := m.do("GET", "web:8080", fmt.Sprintf("/z/%d", i), nil, nil)
		if !hex32.MatchString(a.header.Get("Saw-X-B3-Traceid")) || a.header.Get("Saw-X-B3-Sampled") != "0" {
			t.Fatalf("app saw %v", a.header)
		}
	}
	if err := m.shared.Tracing.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.posts != 0 {
		t.Errorf("%d posts to the collector with sampling 0: %+v", sink.posts, sink.spans)
	}
}

// editTracing edits every connection manager's tracing block.
func editTracing(t testing.TB, res *xdsgen.Resources, edit func(*hcm.HttpConnectionManager_Tracing)) {
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
				if m.Tracing == nil {
					continue
				}
				edit(m.Tracing)
				a, err := anypb.New(&m)
				if err != nil {
					t.Fatal(err)
				}
				f.GetTypedConfig().Value = a.Value
			}
		}
	}
}

// otlpReceiver is an OTLP trace receiver over gRPC or HTTP (protobuf).
type otlpReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	sink *spanSink
}

func (o *otlpReceiver) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	o.add(req)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (o *otlpReceiver) add(req *coltrace.ExportTraceServiceRequest) {
	o.sink.mu.Lock()
	defer o.sink.mu.Unlock()
	o.sink.posts++
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.sink.otlp = append(o.sink.otlp, ss.Spans...)
		}
		// The resource's service.name is kept as a span of its own.
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				o.sink.spans = append(o.sink.spans, zipkinSpan{Name: "resource", LocalEndpoint: struct{ ServiceName string }{kv.GetValue().GetStringValue()}})
			}
		}
	}
}

func (s *spanSink) waitOTLP(t *testing.T, traceHex string) *tracev1.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, sp := range s.otlp {
			if fmt.Sprintf("%x", sp.TraceId) == traceHex {
				s.mu.Unlock()
				return sp
			}
		}
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no OTLP span of trace %s", traceHex)
	return nil
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$`)

// TestOpenTelemetrySpans: the opentelemetry tracer over OTLP/gRPC and
// OTLP/HTTP reports a span per request to the collector cluster, with the
// service_name of the xDS config, and W3C traceparent (and tracestate)
// reach the app; an incoming traceparent is continued.
func TestOpenTelemetrySpans(t *testing.T) {
	for _, viaHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "grpc", true: "http"}[viaHTTP], func(t *testing.T) {
			sink := &spanSink{}
			recv := &otlpReceiver{sink: sink}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if viaHTTP {
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					var req coltrace.ExportTraceServiceRequest
					if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
						http.Error(w, "bad export", 400)
						return
					}
					recv.add(&req)
					w.Header().Set("Content-Type", "application/x-protobuf")
					b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
					w.Write(b)
				})}
				go srv.Serve(lis)
				t.Cleanup(func() { srv.Close() })
			} else {
				gs := grpc.NewServer()
				coltrace.RegisterTraceServiceServer(gs, recv)
				go gs.Serve(lis)
				t.Cleanup(gs.Stop)
			}
			otelSvc := &backend{name: "otel", port: lis.Addr().(*net.TCPAddr).Port}
			web := newBackend(t, "web", sawTrace)
			const cluster = "outbound|8080||otel.default.svc.cluster.local"
			oc := &tracecfg.OpenTelemetryConfig{ServiceName: "curl.default"}
			if viaHTTP {
				oc.HttpService = &core.HttpService{HttpUri: &core.HttpUri{Uri: "otel.default.svc.cluster.local/v1/traces",
					HttpUpstreamType: &core.HttpUri_Cluster{Cluster: cluster}}}
			} else {
				oc.GrpcService = &core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{
					ClusterName: cluster, Authority: "otel.default.svc.cluster.local"}}}
			}
			cfg, err := anypb.New(oc)
			if err != nil {
				t.Fatal(err)
			}
			m := newMeshConfigured(t, &meshv1alpha1.MeshConfig{EnableTracing: true}, service("web", web)+service("otel", otelSvc), func(res *xdsgen.Resources) {
				editTracing(t, res, func(tr *hcm.HttpConnectionManager_Tracing) {
					tr.RandomSampling = &typev3.Percent{Value: 100}
					tr.Provider = &tracecfg.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracecfg.Tracing_Http_TypedConfig{TypedConfig: cfg}}
				})
			})
			a := m.do("GET", "web:8080", "/otel", nil, nil)
			p := traceparentRE.FindStringSubmatch(a.header.Get("Saw-Traceparent"))
			if a.status != 200 || p == nil || p[3] != "1" || a.header.Get("Saw-X-B3-Traceid") != "" {
				t.Fatalf("app saw %v (status %d)", a.header, a.status)
			}
			sp := sink.waitOTLP(t, p[1])
			if fmt.Sprintf("%x", sp.SpanId) != p[2] || sp.Kind != tracev1.Span_SPAN_KIND_CLIENT || sp.Name != "web.default.svc.cluster.local:8080/*" {
				t.Errorf("span %v", sp)
			}
			sink.mu.Lock()
			if len(sink.spans) == 0 || sink.spans[0].LocalEndpoint.ServiceName != "curl.default" {
				t.Errorf("resource service.name: %+v", sink.spans)
			}
			sink.mu.Unlock()
			// An incoming W3C context is continued, tracestate kept.
			const in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			a = m.do("GET", "web:8080", "/otel2", nil, map[string]string{"Traceparent": in, "Tracestate": "congo=t61rcWkgMzE"})
			p = traceparentRE.FindStringSubmatch(a.header.Get("Saw-Traceparent"))
			if p == nil || p[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || p[2] == "00f067aa0ba902b7" || a.header.Get("Saw-Tracestate") != "congo=t61rcWkgMzE" {
				t.Fatalf("continued: app saw %v", a.header)
			}
			if sp := sink.waitOTLP(t, p[1]); fmt.Sprintf("%x", sp.ParentSpanId) != "00f067aa0ba902b7" {
				t.Errorf("continued span's parent %x", sp.ParentSpanId)
			}
		})
	}
}

// TestZipkinCollectorMissing: spans for a collector cluster the proxy does
// not have are dropped off the request path and counted
// (tracing.zipkin.reports_skipped_no_cluster); requests are unaffected.
func TestZipkinCollectorMissing(t *testing.T) {
	web := newBackend(t, "web", sawTrace)
	mc := &meshv1alpha1.MeshConfig{EnableTracing: true, DefaultConfig: &meshv1alpha1.ProxyConfig{Tracing: &meshv1alpha1.Tracing{
		Sampling: 100, Tracer: &meshv1alpha1.Tracing_Zipkin_{Zipkin: &meshv1alpha1.Tracing_Zipkin{Address: "web.default:8080"}},
	}}}
	m := newMeshConfigured(t, mc, service("web", web), func(res *xdsgen.Resources) {
		editTracing(t, res, func(tr *hcm.HttpConnectionManager_Tracing) {
			var zc tracecfg.ZipkinConfig
			if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&zc); err != nil {
				t.Fatal(err)
			}
			zc.CollectorCluster = "outbound|9411||gone.example.com"
			a, _ := anypb.New(&zc)
			tr.GetProvider().ConfigType = &tracecfg.Tracing_Http_TypedConfig{TypedConfig: a}
		})
	})
	if a := m.do("GET", "web:8080", "/x", nil, nil); a.status != 200 || a.header.Get("Saw-X-B3-Sampled") != "1" {
		t.Fatalf("status %d, app saw %v", a.status, a.header)
	}
	m.shared.Tracing.ForceFlush(context.Background())
	if st := m.shared.Tracing.Stats(tracing.Zipkin); st.ReportsSkippedNoCluster.Load() == 0 || st.SpansSent.Load() != 0 {
		t.Errorf("skipped %d, sent %d", st.ReportsSkippedNoCluster.Load(), st.SpansSent.Load())
	}
	var b strings.Builder
	m.shared.Tracing.WriteText(&b)
	if !strings.Contains(b.String(), "tracing.zipkin.reports_skipped_no_cluster: ") {
		t.Errorf("stats text:\n%s", b.String())
	}
}
