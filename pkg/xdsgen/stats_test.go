package xdsgen

import (
	"testing"

	"google.golang.org/protobuf/proto"
	stats "istio.io/api/envoy/extensions/stats"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
)

func pluginOf(t *testing.T, mc *model.MetricsConfig, class model.ListenerClass) *stats.PluginConfig {
	t.Helper()
	a, err := statsConfig(mc, class)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil {
		return nil
	}
	pc := &stats.PluginConfig{}
	if err := a.UnmarshalTo(pc); err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestStatsConfig: the stats filter's config from the resolved metrics,
// as istiod's generateStatsConfig: client metrics on outbound and gateway
// listeners, server metrics on inbound ones; a disabled mode or a
// provider that is not prometheus gives no filter; overrides become
// MetricConfigs (Telemetry's enum names mapped to the stats names), tag
// removals tags_to_remove and upserts dimensions; inbound and gateway
// listeners do not fall back to the Host header.
func TestStatsConfig(t *testing.T) {
	prom := &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "prometheus",
		Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus{
			Prometheus: &meshv1alpha1.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}}}
	defaultMetrics := &model.MetricsConfig{Provider: prom}
	mc := &model.MetricsConfig{Provider: prom,
		ClientMetrics: model.MetricConfig{Overrides: []model.MetricsOverride{
			{Name: "REQUEST_COUNT", Tags: []model.TagOverride{{Name: "user", Value: "request.headers['x-user']"}, {Name: "response_flags", Remove: true}}},
			{Name: "request_duration_milliseconds", Disabled: true},
		}},
		ServerMetrics: model.MetricConfig{Disabled: true},
	}
	want := &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"user": "request.headers['x-user']"}, TagsToRemove: []string{"response_flags"}},
		{Name: "request_duration_milliseconds", Drop: true, Dimensions: map[string]string{}},
	}}
	if got := pluginOf(t, mc, model.ListenerClassSidecarOutbound); !proto.Equal(got, want) {
		t.Errorf("outbound: %v, want %v", got, want)
	}
	want.DisableHostHeaderFallback = true
	if got := pluginOf(t, mc, model.ListenerClassGateway); !proto.Equal(got, want) {
		t.Errorf("gateway: %v, want %v", got, want)
	}
	if got := pluginOf(t, mc, model.ListenerClassSidecarInbound); got != nil {
		t.Errorf("server metrics disabled: %v", got)
	}
	if got := pluginOf(t, defaultMetrics, model.ListenerClassSidecarInbound); !proto.Equal(got, &stats.PluginConfig{DisableHostHeaderFallback: true}) {
		t.Errorf("default inbound: %v", got)
	}
	other := &model.MetricsConfig{Provider: &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "sd",
		Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Stackdriver{}}}
	if got := pluginOf(t, other, model.ListenerClassSidecarOutbound); got != nil {
		t.Errorf("non-prometheus provider: %v", got)
	}
	if got := pluginOf(t, &model.MetricsConfig{}, model.ListenerClassSidecarOutbound); got != nil {
		t.Errorf("no provider: %v", got)
	}
}
