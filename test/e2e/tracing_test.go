package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// tracingMeshConfig is Istio's MeshConfig tracing (the conformance case
// tracing-mesh-config-sampling, at 100%).
const tracingMeshConfig = `enableTracing: true
defaultConfig:
  tracing:
    sampling: 100
    custom_tags:
      my_tag:
        literal: {value: e2e}
    zipkin:
      address: zipkin.istio-system:9411
`

func echoHeader(r *testenv.Response, name string) string {
	if r.Echo == nil {
		return ""
	}
	return r.Echo.Request.Headers.Get(name)
}

// spanOf is the span of trace spans reported by service with kind.
func spanOf(t *testing.T, spans []*testenv.ZipkinSpan, service, kind string) *testenv.ZipkinSpan {
	t.Helper()
	for _, s := range spans {
		if s.ServiceName() == service && s.Kind == kind {
			return s
		}
	}
	t.Fatalf("no %s span of %s in %+v", kind, service, spans)
	return nil
}

// TestTracingZipkin: with MeshConfig tracing to a zipkin collector, a
// request from a client sidecar to a server sidecar is one trace: the
// client's CLIENT span (sleep.default) is the parent of the server's
// SERVER span (ratings.default), whose context reaches the app in B3
// headers; through the ingress gateway the gateway's SERVER span, its
// upstream CLIENT span and the server sidecar's span are one trace. An
// incoming not-sampled decision is passed on and nothing is reported.
func TestTracingZipkin(t *testing.T) {
	t.Parallel()
	col := testenv.StartZipkin(t, "")
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: tracingMeshConfig})
	gwPort := testenv.FreePort()
	m.WriteConfig("zipkin.yaml", testenv.ZipkinServiceEntry(col.Port))
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: %d, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-ingress, namespace: default}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http: [{route: [{destination: {host: ratings, port: {number: 9080}}}]}]
`, gwPort))
	service(t, m, "ratings", map[string]int{"http": 9080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	gw := m.AddGateway(testenv.GatewayOptions{Name: "istio-ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error { return allServedBy(c, 1, "ratings:9080", "/", nil, "ratings", "v1") }, convergeTimeout)
	requireSyncedNoNACK(t, m)

	t.Run("client sidecar to server sidecar", func(t *testing.T) {
		r := get(t, c, "ratings:9080", "/traced", map[string]string{"X-Request-Id": "trace-e2e-1"})
		tid, sid := echoHeader(r, "X-B3-Traceid"), echoHeader(r, "X-B3-Spanid")
		if r.Status != 200 || len(tid) != 32 || len(sid) != 16 || echoHeader(r, "X-B3-Sampled") != "1" || echoHeader(r, "X-B3-Parentspanid") == "" {
			t.Fatalf("the app saw %v", r.Echo)
		}
		spans := col.WaitTrace(t, tid, 2)
		client := spanOf(t, spans, "sleep.default", "CLIENT")
		server := spanOf(t, spans, "ratings.default", "SERVER")
		if server.ParentID != client.ID || server.ID != sid || client.ParentID != "" || echoHeader(r, "X-B3-Parentspanid") != client.ID {
			t.Errorf("links: client %+v, server %+v, app saw span %s parent %s", client, server, sid, echoHeader(r, "X-B3-Parentspanid"))
		}
		if want := "ratings.default.svc.cluster.local:9080/*"; client.Name != want || server.Name != want {
			t.Errorf("span names %q, %q, want the route's decorator %q", client.Name, server.Name, want)
		}
		for _, s := range []*testenv.ZipkinSpan{client, server} {
			for k, v := range map[string]string{"component": "proxy", "http.status_code": "200", "guid:x-request-id": "trace-e2e-1",
				"my_tag": "e2e", "istio.namespace": "default", "http.method": "GET"} {
				if s.Tags[k] != v {
					t.Errorf("%s span: tag %s = %q, want %q (%v)", s.LocalEndpoint.ServiceName, k, s.Tags[k], v, s.Tags)
				}
			}
		}
		if client.Tags["upstream_cluster"] != "outbound|9080||ratings.default.svc.cluster.local" || client.Tags["istio.canonical_service"] != "sleep" ||
			server.Tags["istio.canonical_service"] != "ratings" || !strings.HasPrefix(server.Tags["node_id"], "sidecar~") ||
			!strings.HasPrefix(server.Tags["upstream_cluster"], "inbound|") {
			t.Errorf("tags: client %v, server %v", client.Tags, server.Tags)
		}
	})

	t.Run("gateway to sidecar", func(t *testing.T) {
		var r *testenv.Response
		m.WaitConverged(func() error {
			req, _ := http.NewRequest("GET", "http://"+gw.Address(gwPort)+"/productpage", nil)
			req.Host = "bookinfo.example.com"
			var err error
			if r, err = testenv.Send(&http.Client{Timeout: 5 * time.Second}, req); err != nil {
				return err
			}
			return servedBy(r, "ratings", "")
		}, convergeTimeout)
		tid := echoHeader(r, "X-B3-Traceid")
		spans := col.WaitTrace(t, tid, 3)
		gwServer := spanOf(t, spans, "istio-ingressgateway.istio-system", "SERVER")
		gwClient := spanOf(t, spans, "istio-ingressgateway.istio-system", "CLIENT")
		server := spanOf(t, spans, "ratings.default", "SERVER")
		if gwServer.ParentID != "" || gwClient.ParentID != gwServer.ID || server.ParentID != gwClient.ID || server.ID != echoHeader(r, "X-B3-Spanid") {
			t.Errorf("links: gateway %+v / %+v, sidecar %+v", gwServer, gwClient, server)
		}
	})

	t.Run("not sampled upstream decision", func(t *testing.T) {
		const trace = "80f198ee56343ba864fe8b2a57d3eff7"
		r := get(t, c, "ratings:9080", "/unsampled", map[string]string{"X-B3-Traceid": trace, "X-B3-Spanid": "e457b5a2e4d86bd1", "X-B3-Sampled": "0"})
		if echoHeader(r, "X-B3-Traceid") != trace || echoHeader(r, "X-B3-Sampled") != "0" {
			t.Fatalf("the app saw %v", r.Echo)
		}
		// A sampled request after it is reported, so the exporters ran.
		r2 := get(t, c, "ratings:9080", "/sampled", nil)
		col.WaitTrace(t, echoHeader(r2, "X-B3-Traceid"), 2)
		if got := col.Trace(trace); len(got) != 0 {
			t.Errorf("a not-sampled trace was reported: %+v", got)
		}
	})
}

// otlpCollector is an OTLP trace receiver run by the test, over gRPC or
// HTTP (protobuf): it keeps the spans with their resource's service.name.
type otlpCollector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string][]otlpSpan // by trace id
	port  int
}

type otlpSpan struct {
	service      string
	id, parentID string
	kind         tracev1.Span_SpanKind
}

func (o *otlpCollector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	o.add(req)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (o *otlpCollector) add(req *coltrace.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		var svc string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				tid := hex.EncodeToString(sp.TraceId)
				o.spans[tid] = append(o.spans[tid], otlpSpan{service: svc, id: hex.EncodeToString(sp.SpanId),
					parentID: hex.EncodeToString(sp.ParentSpanId), kind: sp.Kind})
			}
		}
	}
}

func newOTLPCollector(t *testing.T, viaHTTP bool) *otlpCollector {
	o := &otlpCollector{spans: map[string][]otlpSpan{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.port = lis.Addr().(*net.TCPAddr).Port
	if !viaHTTP {
		gs := grpc.NewServer()
		coltrace.RegisterTraceServiceServer(gs, o)
		go gs.Serve(lis)
		t.Cleanup(gs.Stop)
		return o
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.Method != "POST" || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP/HTTP export", 400)
			return
		}
		o.add(&req)
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *otlpCollector) waitTrace(t *testing.T, id string, n int) []otlpSpan {
	t.Helper()
	var got []otlpSpan
	err := testenv.Eventually(func() error {
		o.mu.Lock()
		got = append([]otlpSpan(nil), o.spans[id]...)
		o.mu.Unlock()
		if len(got) < n {
			return fmt.Errorf("trace %s: %d spans, want %d: %+v", id, len(got), n, got)
		}
		return nil
	}, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTracingOpenTelemetry: the opentelemetry extension provider (the
// conformance case tracing-sampling-opentelemetry's shape, over gRPC and
// over HTTP) chosen by a mesh-wide Telemetry: a client sidecar to server
// sidecar request is one trace at the OTLP collector (the server's SERVER
// span child of the client's CLIENT span, service names curl.default and
// httpbin.default), and W3C traceparent reaches the app.
func TestTracingOpenTelemetry(t *testing.T) {
	t.Parallel()
	for _, viaHTTP := range []bool{false, true} {
		name := map[bool]string{false: "grpc", true: "http"}[viaHTTP]
		t.Run(name, func(t *testing.T) {
			col := newOTLPCollector(t, viaHTTP)
			provider := "    port: 4317\n"
			if viaHTTP {
				provider = "    port: 4318\n    http:\n      path: /v1/traces\n"
			}
			m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: "enableTracing: true\nextensionProviders:\n- name: otel-tracing\n  opentelemetry:\n" +
				provider + "    service: opentelemetry-collector.observability.svc.cluster.local\n    resource_detectors:\n      environment: {}\n"})
			m.WriteConfig("collector.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: opentelemetry-collector, namespace: observability}
spec:
  hosts: [opentelemetry-collector.observability.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 4317, name: grpc-otlp, protocol: GRPC}, {number: 4318, name: http-otlp, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {grpc-otlp: %[1]d, http-otlp: %[1]d}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel-tracing}]
    randomSamplingPercentage: 100
`, col.port))
			service(t, m, "httpbin", map[string]int{"http": 8000}, "v1")
			c := m.AddClient(testenv.ClientOptions{Name: "curl"})
			m.WaitReady()
			m.WaitSynced(convergeTimeout)
			m.WaitConverged(func() error { return allServedBy(c, 1, "httpbin:8000", "/", nil, "httpbin", "v1") }, convergeTimeout)
			r := get(t, c, "httpbin:8000", "/get", nil)
			p := strings.Split(echoHeader(r, "Traceparent"), "-")
			if r.Status != 200 || len(p) != 4 || len(p[1]) != 32 || p[3] != "01" || echoHeader(r, "X-B3-Traceid") != "" {
				t.Fatalf("the app saw %v", r.Echo)
			}
			spans := col.waitTrace(t, p[1], 2)
			var client, server otlpSpan
			for _, s := range spans {
				switch {
				case s.service == "curl.default" && s.kind == tracev1.Span_SPAN_KIND_CLIENT:
					client = s
				case s.service == "httpbin.default" && s.kind == tracev1.Span_SPAN_KIND_SERVER:
					server = s
				}
			}
			if client.id == "" || server.parentID != client.id || server.id != p[2] {
				t.Errorf("spans %+v (app saw span %s)", spans, p[2])
			}
		})
	}
}

// TestTracingZipkinTelemetryAPI: the Telemetry-API task's shape (the
// conformance case tracing-zipkin-telemetry-api): a zipkin extension
// provider, `defaultConfig.tracing: {}`, and a mesh-wide Telemetry with
// 100% sampling and a literal tag; requests through the ingress gateway to
// productpage are one trace of the gateway's spans and productpage's
// (serviceName productpage.default), each with the tag.
func TestTracingZipkinTelemetryAPI(t *testing.T) {
	t.Parallel()
	col := testenv.StartZipkin(t, "")
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: `enableTracing: true
defaultConfig:
  tracing: {}
extensionProviders:
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
`})
	gwPort := testenv.FreePort()
	m.WriteConfig("zipkin.yaml", testenv.ZipkinServiceEntry(col.Port))
	m.WriteConfig("bookinfo.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: %d, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match: [{uri: {exact: /productpage}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 100.00
    customTags:
      provider: {literal: {value: zipkin}}
`, gwPort))
	service(t, m, "productpage", map[string]int{"http": 9080}, "v1")
	gw := m.AddGateway(testenv.GatewayOptions{Name: "istio-ingressgateway",
		Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	requireSyncedNoNACK(t, m)
	var r *testenv.Response
	m.WaitConverged(func() error {
		req, _ := http.NewRequest("GET", "http://"+gw.Address(gwPort)+"/productpage", nil)
		var err error
		if r, err = testenv.Send(&http.Client{Timeout: 5 * time.Second}, req); err != nil {
			return err
		}
		return servedBy(r, "productpage", "")
	}, convergeTimeout)
	tid := echoHeader(r, "X-B3-Traceid")
	if echoHeader(r, "X-B3-Sampled") != "1" {
		t.Fatalf("the app saw %v", r.Echo)
	}
	spans := col.WaitTrace(t, tid, 3)
	gwClient := spanOf(t, spans, "istio-ingressgateway.istio-system", "CLIENT")
	server := spanOf(t, spans, "productpage.default", "SERVER")
	if server.ParentID != gwClient.ID || server.ID != echoHeader(r, "X-B3-Spanid") {
		t.Errorf("links: gateway %+v, productpage %+v", gwClient, server)
	}
	for _, s := range spans {
		if s.Tags["provider"] != "zipkin" {
			t.Errorf("%s %s span without the literal tag: %v", s.LocalEndpoint.ServiceName, s.Kind, s.Tags)
		}
	}
}
