package dataplane

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

func statsAny(t *testing.T, pc *stats.PluginConfig) *anypb.Any {
	t.Helper()
	a, err := anypb.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestStatsHTTPFilter: the stats filter before the router gives the chain
// its compiled config and is not run per request; without it the chain
// records nothing; a config the proxy cannot honour is NACKed naming the
// filter and the field; two are refused.
func TestStatsHTTPFilter(t *testing.T) {
	m := baseHCM()
	chain, err := compileHCMForTest(t, m)
	if err != nil || chain.Stats != nil {
		t.Fatalf("no stats filter: stats %v err %v", chain.Stats, err)
	}
	withStats := func(pcs ...*stats.PluginConfig) *hcm.HttpConnectionManager {
		m := baseHCM()
		var fs []*hcm.HttpFilter
		for _, pc := range pcs {
			fs = append(fs, &hcm.HttpFilter{Name: StatsFilterName, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: statsAny(t, pc)}})
		}
		m.HttpFilters = append(fs, m.HttpFilters...)
		return m
	}
	chain, err = compileHCMForTest(t, withStats(&stats.PluginConfig{Metrics: []*stats.MetricConfig{{Name: "requests_total", Drop: true}}}))
	if err != nil || chain.Stats == nil {
		t.Fatalf("stats filter: stats %v err %v", chain.Stats, err)
	}
	if len(chain.HTTPFilters) != 1 {
		t.Errorf("the stats filter stays in the per-request chain: %d filters", len(chain.HTTPFilters))
	}
	_, err = compileHCMForTest(t, withStats(&stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Dimensions: map[string]string{"x": "request.size"}}}}))
	if err == nil || !strings.Contains(err.Error(), `"istio.stats"`) || !strings.Contains(err.Error(), "request.size") {
		t.Errorf("bad expression: %v", err)
	}
	_, err = compileHCMForTest(t, withStats(&stats.PluginConfig{}, &stats.PluginConfig{}))
	if err == nil || !strings.Contains(err.Error(), "only one") {
		t.Errorf("two stats filters: %v", err)
	}
}

// TestStatsNetworkFilter: [rbac..., istio.stats, tcp_proxy] compiles
// with the chain's config; the filter anywhere else is NACKed.
func TestStatsNetworkFilter(t *testing.T) {
	tp, _ := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: "t", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "c"}})
	tcp := &listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: tp}}
	st := &listener.Filter{Name: StatsFilterName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: statsAny(t, &stats.PluginConfig{DisableHostHeaderFallback: true})}}
	chain, err := compileFilterChain(&listener.FilterChain{Filters: []*listener.Filter{st, tcp}}, nil, core.TrafficDirection_INBOUND)
	if err != nil || chain.Stats == nil || chain.TCP == nil {
		t.Fatalf("stats before tcp_proxy: %+v %v", chain, err)
	}
	chain, err = compileFilterChain(&listener.FilterChain{Filters: []*listener.Filter{tcp}}, nil, core.TrafficDirection_INBOUND)
	if err != nil || chain.Stats != nil {
		t.Fatalf("tcp_proxy alone: stats %v err %v", chain.Stats, err)
	}
	bad := &listener.Filter{Name: StatsFilterName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: statsAny(t, &stats.PluginConfig{
		Definitions: []*stats.MetricDefinition{{Name: "m", Value: "1"}}})}}
	if _, err := compileFilterChain(&listener.FilterChain{Filters: []*listener.Filter{bad, tcp}}, nil, core.TrafficDirection_INBOUND); err == nil ||
		!strings.Contains(err.Error(), "definitions") {
		t.Errorf("custom metric definitions: %v", err)
	}
	if _, err := compileFilterChain(&listener.FilterChain{Filters: []*listener.Filter{tcp, st}}, nil, core.TrafficDirection_INBOUND); err == nil {
		t.Error("stats after tcp_proxy accepted")
	}
}

// TestClusterService: the first service of a cluster's istio metadata is
// its destination service; a cluster without one has none.
func TestClusterService(t *testing.T) {
	svc := func(host, name, ns string) *structpb.Value {
		return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host": structpb.NewStringValue(host), "name": structpb.NewStringValue(name), "namespace": structpb.NewStringValue(ns)}})
	}
	cl := &cluster.Cluster{Name: "inbound|9080||", Metadata: &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"istio": {Fields: map[string]*structpb.Value{"services": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
			svc("productpage.default.svc.cluster.local", "productpage", "default"), svc("other.default.svc.cluster.local", "other", "default")}})}}}}}
	got := clusterService(cl)
	if got == nil || *got != (istiometrics.Service{Host: "productpage.default.svc.cluster.local", Name: "productpage", Namespace: "default"}) {
		t.Errorf("service %+v", got)
	}
	if s := clusterService(&cluster.Cluster{Name: "x"}); s != nil {
		t.Errorf("no metadata gave %+v", s)
	}
	c := &compiler{prev: &Runtime{Services: map[string]*istiometrics.Service{cl.Name: got}}, rt: &Runtime{Clusters: map[string]*upstream.Cluster{}}}
	c.setClusterService(cl.Name, cl)
	if c.rt.Services[cl.Name] != got {
		t.Error("an unchanged service is not the previous runtime's record")
	}
}
