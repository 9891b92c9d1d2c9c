package dataplane

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func hcmListener(t *testing.T, dir core.TrafficDirection, tr *hcm.HttpConnectionManager_Tracing) *listener.Listener {
	t.Helper()
	m := &hcm.HttpConnectionManager{StatPrefix: "s", Tracing: tr,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "r",
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router"}}}
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listener.Listener{Name: "l", TrafficDirection: dir,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 1}}}},
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}}}}}
}

// TestTracingDirection: a tracing block makes the chain egress on an
// outbound listener and ingress otherwise (Envoy's operation name from
// traffic_direction); span settings are accepted, a provider is not.
func TestTracingDirection(t *testing.T) {
	spans := &hcm.HttpConnectionManager_Tracing{Verbose: true, MaxPathTagLength: wrapperspb.UInt32(64)}
	for _, tc := range []struct {
		dir  core.TrafficDirection
		tr   *hcm.HttpConnectionManager_Tracing
		want Tracing
	}{
		{core.TrafficDirection_OUTBOUND, nil, TracingOff},
		{core.TrafficDirection_OUTBOUND, &hcm.HttpConnectionManager_Tracing{}, TracingEgress},
		{core.TrafficDirection_OUTBOUND, spans, TracingEgress},
		{core.TrafficDirection_INBOUND, &hcm.HttpConnectionManager_Tracing{}, TracingIngress},
		{core.TrafficDirection_UNSPECIFIED, &hcm.HttpConnectionManager_Tracing{}, TracingIngress},
	} {
		l, err := compileListener(hcmListener(t, tc.dir, tc.tr), nil)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.dir, tc.tr, err)
		}
		if got := l.Chains[0].Tracing; got != tc.want {
			t.Errorf("%v %v: tracing %v, want %v", tc.dir, tc.tr, got, tc.want)
		}
	}
	zipkin, _ := anypb.New(&tracev3.ZipkinConfig{CollectorCluster: "zipkin", CollectorEndpoint: "/api/v2/spans",
		CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: true})
	withProvider := &hcm.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: zipkin}}}
	l, err := compileListener(hcmListener(t, core.TrafficDirection_OUTBOUND, withProvider), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := l.Chains[0].Tracer; tr == nil || tr.Server || tr.Exporter.Cluster != "zipkin" || !tr.B3 {
		t.Errorf("outbound zipkin tracer %+v", tr)
	}
	// Span settings sluice does not honour are refused with a provider.
	withProvider.Verbose = true
	if _, err := compileListener(hcmListener(t, core.TrafficDirection_OUTBOUND, withProvider), nil); err == nil ||
		!strings.Contains(err.Error(), "verbose") {
		t.Errorf("verbose accepted (err %v)", err)
	}
}
