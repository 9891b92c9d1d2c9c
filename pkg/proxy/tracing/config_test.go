package tracing

import (
	"net/http"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func provider(t *testing.T, name string, m proto.Message) *tracecfg.Tracing_Http {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &tracecfg.Tracing_Http{Name: name, ConfigType: &tracecfg.Tracing_Http_TypedConfig{TypedConfig: a}}
}

func istioZipkin() *tracecfg.ZipkinConfig {
	return &tracecfg.ZipkinConfig{CollectorCluster: "outbound|9411||zipkin.istio-system.svc.cluster.local", CollectorEndpoint: "/api/v2/spans",
		CollectorHostname: "zipkin.istio-system.svc.cluster.local", CollectorEndpointVersion: tracecfg.ZipkinConfig_HTTP_JSON,
		TraceId_128Bit: true, SharedSpanContext: wrapperspb.Bool(false)}
}

// TestCompile: what istiod generates compiles to the settings it means;
// every setting the proxy cannot honour is refused by name.
func TestCompile(t *testing.T) {
	tr := &hcm.HttpConnectionManager_Tracing{
		Provider:       provider(t, Zipkin, istioZipkin()),
		RandomSampling: &typev3.Percent{Value: 12.5}, ClientSampling: &typev3.Percent{Value: 100}, OverallSampling: &typev3.Percent{Value: 100},
		MaxPathTagLength: wrapperspb.UInt32(64),
		CustomTags: []*tracingv3.CustomTag{
			{Tag: "lit", Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "v"}}},
			{Tag: "env", Type: &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: "SLUICE_TRACING_TEST_UNSET", DefaultValue: "dflt"}}},
			{Tag: "hdr", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "x-tag", DefaultValue: "none"}}},
			{Tag: "md", Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
				Kind:        &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Request_{Request: &metadatav3.MetadataKind_Request{}}},
				MetadataKey: &metadatav3.MetadataKey{Key: "f", Path: []*metadatav3.MetadataKey_PathSegment{{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: "k"}}}},
			}}},
			{Tag: "fmt", Type: &tracingv3.CustomTag_Value{Value: "%REQ(x-fmt)%/%RESPONSE_CODE%"}},
		},
	}
	c, err := Compile(tr, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server || !c.B3 || c.W3C || c.Random != 125_000 || c.Client != 1_000_000 || c.MaxPathTag != 64 || len(c.Tags) != 5 {
		t.Errorf("compiled %+v", c)
	}
	if e := c.Exporter; e.Kind != Zipkin || e.Cluster != "outbound|9411||zipkin.istio-system.svc.cluster.local" || e.Path != "/api/v2/spans" ||
		e.Host != "zipkin.istio-system.svc.cluster.local" || e.TraceID64 {
		t.Errorf("exporter %+v", e)
	}
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("X-Fmt", "formatted")
	in := &FinishInput{Req: r, Info: &httpfilter.RequestInfo{Status: 201}, Metadata: map[string]map[string]any{"f": {"k": "from-md"}}}
	for i, want := range []string{"v", "dflt", "none", "from-md", "formatted/201"} {
		if got, ok := c.Tags[i].value(in); !ok || got != want {
			t.Errorf("tag %s = %q, %v; want %q", c.Tags[i].Name, got, ok, want)
		}
	}
	if v := requestHeader(r, ":authority"); v != "x" || requestHeader(r, "host") != "" || requestHeader(r, ":path") != "/" {
		t.Errorf("pseudo-headers: :authority %q", v)
	}
	if _, ok := c.Tags[3].value(&FinishInput{Req: r}); ok {
		t.Error("a metadata tag without metadata has a value")
	}
	if in, _ := Compile(tr, false); !in.Server {
		t.Error("inbound connection manager: want a server span")
	}

	refuse := map[string]func(*hcm.HttpConnectionManager_Tracing){
		"verbose":            func(t *hcm.HttpConnectionManager_Tracing) { t.Verbose = true },
		"upstream_operation": func(t *hcm.HttpConnectionManager_Tracing) { t.UpstreamOperation = "x" },
		"shared_span_context": func(tr *hcm.HttpConnectionManager_Tracing) {
			z := istioZipkin()
			z.SharedSpanContext = wrapperspb.Bool(true)
			tr.Provider = provider(t, Zipkin, z)
		},
		"collector_endpoint_version": func(tr *hcm.HttpConnectionManager_Tracing) {
			z := istioZipkin()
			z.CollectorEndpointVersion = tracecfg.ZipkinConfig_HTTP_PROTO
			tr.Provider = provider(t, Zipkin, z)
		},
		"split_spans_for_request": func(tr *hcm.HttpConnectionManager_Tracing) {
			z := istioZipkin()
			z.SplitSpansForRequest = true
			tr.Provider = provider(t, Zipkin, z)
		},
		"envoy.tracers.datadog": func(tr *hcm.HttpConnectionManager_Tracing) {
			tr.Provider = provider(t, "envoy.tracers.datadog", &tracecfg.DatadogConfig{})
		},
		"sampler": func(tr *hcm.HttpConnectionManager_Tracing) {
			tr.Provider = provider(t, OpenTelemetry, &tracecfg.OpenTelemetryConfig{Sampler: &core.TypedExtensionConfig{Name: "s"},
				GrpcService: &core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: "c"}}}})
		},
		"google_grpc": func(tr *hcm.HttpConnectionManager_Tracing) {
			tr.Provider = provider(t, OpenTelemetry, &tracecfg.OpenTelemetryConfig{
				GrpcService: &core.GrpcService{TargetSpecifier: &core.GrpcService_GoogleGrpc_{GoogleGrpc: &core.GrpcService_GoogleGrpc{TargetUri: "x"}}}})
		},
		"only request metadata": func(t *hcm.HttpConnectionManager_Tracing) {
			t.CustomTags = []*tracingv3.CustomTag{{Tag: "m", Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
				Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Route_{Route: &metadatav3.MetadataKind_Route{}}}, MetadataKey: &metadatav3.MetadataKey{Key: "f"}}}}}
		},
		"value": func(t *hcm.HttpConnectionManager_Tracing) {
			t.CustomTags = []*tracingv3.CustomTag{{Tag: "f", Type: &tracingv3.CustomTag_Value{Value: "%NO_SUCH_OPERATOR%"}}}
		},
	}
	for want, edit := range refuse {
		bad := proto.Clone(tr).(*hcm.HttpConnectionManager_Tracing)
		edit(bad)
		if _, err := Compile(bad, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v", want, err)
		}
	}
	if c, err := Compile(&hcm.HttpConnectionManager_Tracing{Verbose: true}, true); c != nil || err != nil {
		t.Errorf("no provider: %v, %v (the connection manager handles it)", c, err)
	}
}

// TestB3Decision: which incoming B3 contexts carry a sampling decision
// (honoured) and which leave it to the proxy.
func TestB3Decision(t *testing.T) {
	valid := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	for _, tc := range []struct {
		h                map[string]string
		decided, sampled bool
	}{
		{map[string]string{}, false, false},
		{map[string]string{"X-B3-Sampled": "1"}, true, true},
		{map[string]string{"X-B3-Sampled": "0"}, true, false},
		{map[string]string{"X-B3-Flags": "1"}, true, true},
		{map[string]string{"B3": "0"}, true, false},
		{map[string]string{"B3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"}, true, true},
		{map[string]string{"B3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"}, false, false},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if d, s := b3Decision(h, valid); d != tc.decided || s != tc.sampled {
			t.Errorf("%v: decided %v sampled %v, want %v %v", tc.h, d, s, tc.decided, tc.sampled)
		}
	}
}

func TestSample(t *testing.T) {
	if sample(0) || !sample(1_000_000) {
		t.Fatal("0% sampled or 100% not")
	}
	n := 0
	for range 100_000 {
		if sample(100_000) {
			n++
		}
	}
	if n < 9_000 || n > 11_000 {
		t.Errorf("10%%: %d of 100000", n)
	}
}
