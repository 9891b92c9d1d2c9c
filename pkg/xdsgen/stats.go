package xdsgen

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// StatsFilter is Istio's stats filter, HTTP and network (istiod's
// xds.StatsFilterName), typed stats.PluginConfig.
const StatsFilter = "istio.stats"

// metricsConfig is the proxy's resolved metrics: nil (no metrics provider
// applies, as with a MeshConfig whose defaultProviders name none) leaves
// the stats filter out, as istiod does. An installed mesh has
// defaultProviders.metrics [prometheus] (pkg/meshconfig applies it when the
// file sets no defaultProviders), so every standard metric is recorded.
func (g *generation) metricsConfig() *model.MetricsConfig {
	return g.push.Metrics(g.proxy)
}

// statsConfig is the stats filter's typed_config for listeners of class,
// as istiod's generateStatsConfig builds it; nil when the class records
// no metrics (no prometheus provider, or metrics disabled for the
// class's mode). Client metrics are for outbound and gateway listeners,
// server metrics for inbound ones; inbound and gateway listeners do not
// fall back to the Host header for the destination service.
func statsConfig(mc *model.MetricsConfig, class model.ListenerClass) (*anypb.Any, error) {
	if mc == nil || mc.Provider.GetPrometheus() == nil {
		return nil, nil
	}
	mcfg := mc.ClientMetrics
	if class == model.ListenerClassSidecarInbound {
		mcfg = mc.ServerMetrics
	}
	if mcfg.Disabled {
		return nil, nil
	}
	cfg := &stats.PluginConfig{
		DisableHostHeaderFallback: class == model.ListenerClassSidecarInbound || class == model.ListenerClassGateway,
	}
	for _, o := range mcfg.Overrides {
		name := model.PrometheusMetricName(o.Name)
		m := &stats.MetricConfig{Name: name, Drop: o.Disabled, Dimensions: map[string]string{}}
		for _, t := range o.Tags {
			if t.Remove {
				m.TagsToRemove = append(m.TagsToRemove, t.Name)
			} else {
				m.Dimensions[t.Name] = t.Value
			}
		}
		cfg.Metrics = append(cfg.Metrics, m)
	}
	return anypb.New(cfg)
}

// listenerClass is the class of a generated listener: inbound sidecar
// listeners by direction, a router's listeners are gateway ones, the
// rest outbound.
func (g *generation) listenerClass(l *listener.Listener) model.ListenerClass {
	switch {
	case l.TrafficDirection == core.TrafficDirection_INBOUND:
		return model.ListenerClassSidecarInbound
	case g.proxy.Type == model.Router:
		return model.ListenerClassGateway
	}
	return model.ListenerClassSidecarOutbound
}

// addStatsFilters puts the stats filter in every chain of the generated
// listeners where istiod's listener builders put it: in a connection
// manager just before the router (after fault and CORS,
// listener_builder.go buildHTTPConnectionManager), in a TCP chain just
// before tcp_proxy (after network RBAC, networkfilter.go). It runs once
// the listeners are built, so no listener builder needs to know about
// metrics.
func (g *generation) addStatsFilters() error {
	mc := g.metricsConfig()
	for _, l := range g.out.Listeners {
		cfg, err := statsConfig(mc, g.listenerClass(l))
		if err != nil {
			return fmt.Errorf("listener %s: stats filter: %w", l.Name, err)
		}
		if cfg == nil {
			continue
		}
		for _, fc := range append(l.FilterChains[:len(l.FilterChains):len(l.FilterChains)], l.DefaultFilterChain) {
			if fc == nil {
				continue
			}
			if err := addChainStats(fc, cfg); err != nil {
				return fmt.Errorf("listener %s: stats filter: %w", l.Name, err)
			}
		}
	}
	return nil
}

func addChainStats(fc *listener.FilterChain, cfg *anypb.Any) error {
	n := len(fc.Filters)
	if n == 0 {
		return nil
	}
	last := fc.Filters[n-1]
	switch last.Name {
	case TCPProxyFilter:
		f := &listener.Filter{Name: StatsFilter, ConfigType: &listener.Filter_TypedConfig{TypedConfig: cfg}}
		fc.Filters = append(fc.Filters[:n-1:n-1], f, last)
	case HTTPConnectionManagerFilter:
		var m hcm.HttpConnectionManager
		if err := last.GetTypedConfig().UnmarshalTo(&m); err != nil {
			return err
		}
		r := len(m.HttpFilters) - 1
		if r < 0 || m.HttpFilters[r].Name != RouterFilter {
			return fmt.Errorf("connection manager without a router last")
		}
		f := &hcm.HttpFilter{Name: StatsFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cfg}}
		m.HttpFilters = append(m.HttpFilters[:r:r], f, m.HttpFilters[r])
		typed, err := anypb.New(&m)
		if err != nil {
			return err
		}
		last.ConfigType = &listener.Filter_TypedConfig{TypedConfig: typed}
	}
	return nil
}

// setInboundServices records in an inbound cluster's metadata the
// services the port serves (those with an endpoint at host:port), as
// istiod's addTelemetryMetadata does for inbound clusters: the server
// side's stats take destination_service from the first. A port no
// service names, or whose first service is mesh-external, gets none.
func (g *generation) setInboundServices(c *cluster.Cluster, host string, port uint32) {
	var svcs []*registry.Service
	seen := map[string]bool{}
	for _, h := range g.endpointHits(host, port) {
		if !seen[h.svc.Hostname] {
			svcs = append(svcs, h.svc)
			seen[h.svc.Hostname] = true
		}
	}
	if len(svcs) == 0 || svcs[0].MeshExternal {
		return
	}
	setClusterServices(c, svcs)
}

// setClusterServices writes svcs in c's metadata, filter_metadata
// "istio" "services" (host, name, namespace each), as istiod's
// addTelemetryMetadata: an outbound cluster names the service it is
// built for. The name is Istio's service attribute name: a Kubernetes
// Service's name, a ServiceEntry host's own hostname (serviceentry
// conversion); the namespace the resource's.
func setClusterServices(c *cluster.Cluster, svcs []*registry.Service) {
	list := make([]*structpb.Value, 0, len(svcs))
	for _, svc := range svcs {
		name := svc.Hostname
		if svc.Source.Kind == config.KindService {
			name = svc.Source.Name
		}
		list = append(list, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host": structpb.NewStringValue(svc.Hostname), "name": structpb.NewStringValue(name),
			"namespace": structpb.NewStringValue(svc.Namespace),
		}}))
	}
	if c.Metadata == nil {
		c.Metadata = &core.Metadata{}
	}
	if c.Metadata.FilterMetadata == nil {
		c.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	im := c.Metadata.FilterMetadata["istio"]
	if im == nil {
		im = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		c.Metadata.FilterMetadata["istio"] = im
	}
	im.Fields["services"] = structpb.NewListValue(&structpb.ListValue{Values: list})
}
