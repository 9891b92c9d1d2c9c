package dataplane

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/anypb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
)

// Istio's stats filter (istio/proxy istio_stats), as istiod generates it
// from the Telemetry API (pilot/pkg/model/telemetry.go
// buildHTTPTelemetryFilter, buildTCPTelemetryFilter): an HTTP filter
// before the router and a network filter before tcp_proxy, both typed
// stats.PluginConfig. A chain records Istio's standard metrics exactly
// when it has the filter, with the filter's overrides
// (istiometrics.Compile); the connection manager records a request when
// it completes, so the HTTP filter does nothing per request and is taken
// out of the chain's filter list.

// StatsFilterName is the stats filter's name (HTTP and network).
const StatsFilterName = "istio.stats"

func init() { httpfilter.Register(statsFactory{}) }

type statsFactory struct{}

func (statsFactory) Name() string       { return StatsFilterName }
func (statsFactory) ConfigType() string { return "stats.PluginConfig" }

func (statsFactory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	c, err := compileStats(cfg)
	if err != nil {
		return nil, err
	}
	return &statsFilter{cfg: c}, nil
}

func (statsFactory) CompilePerRoute(*httpfilter.PerRouteInput) (any, error) { return nil, nil }

// statsFilter holds a connection manager's compiled stats config until
// takeStats moves it onto the chain.
type statsFilter struct{ cfg *istiometrics.Config }

func (*statsFilter) Decode(*httpfilter.Stream) httpfilter.Status { return httpfilter.Continue }

// compileStats compiles a stats filter's typed_config (absent: no
// overrides).
func compileStats(cfg *anypb.Any) (*istiometrics.Config, error) {
	if cfg == nil {
		return istiometrics.DefaultConfig, nil
	}
	var pc stats.PluginConfig
	if err := cfg.UnmarshalTo(&pc); err != nil {
		return nil, err
	}
	return istiometrics.Compile(&pc)
}

// takeStats takes the stats filter out of a connection manager's
// compiled filters and returns its config (nil: none, nothing recorded).
// Two stats filters (two prometheus providers) would count every
// request twice into the same families: refused.
func takeStats(filters []httpfilter.Filter) ([]httpfilter.Filter, *istiometrics.Config, error) {
	var cfg *istiometrics.Config
	out := filters[:0]
	for _, f := range filters {
		sf, ok := f.(*statsFilter)
		if !ok {
			out = append(out, f)
			continue
		}
		if cfg != nil {
			return nil, nil, fmt.Errorf("http filter %q: only one per connection manager is supported", StatsFilterName)
		}
		cfg = sf.cfg
	}
	return out, cfg, nil
}

// compileStatsNetwork compiles the stats network filter of a TCP chain.
func compileStatsNetwork(f *listener.Filter) (*istiometrics.Config, error) {
	if f.GetConfigDiscovery() != nil {
		return nil, fmt.Errorf("network filter %s: %w", f.Name, errConfigDiscovery)
	}
	if tc := f.GetTypedConfig(); tc != nil && tc.MessageName() != "stats.PluginConfig" {
		return nil, fmt.Errorf("network filter %s: typed_config %s: only stats.PluginConfig is supported", f.Name, tc.MessageName())
	}
	c, err := compileStats(f.GetTypedConfig())
	if err != nil {
		return nil, fmt.Errorf("network filter %s: %w", f.Name, err)
	}
	return c, nil
}

// clusterService is the destination service istiod puts in a cluster's
// metadata for the stats filter (filter_metadata "istio" "services", the
// first entry, as istio_stats reads it; pilot/pkg/networking/core
// cluster_builder.go addTelemetryMetadata); nil when there is none.
func clusterService(cl *cluster.Cluster) *istiometrics.Service {
	svcs := cl.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues()
	if len(svcs) == 0 {
		return nil
	}
	f := svcs[0].GetStructValue().GetFields()
	host := f["host"].GetStringValue()
	if host == "" {
		return nil
	}
	return &istiometrics.Service{Host: host, Name: f["name"].GetStringValue(), Namespace: f["namespace"].GetStringValue()}
}

// setClusterService records cluster name's service, keeping the previous
// runtime's record when it is the same (so the metrics' caches, keyed by
// it, stay warm across pushes).
func (c *compiler) setClusterService(name string, cl *cluster.Cluster) {
	s := clusterService(cl)
	if s == nil {
		return
	}
	if c.rt.Services == nil {
		c.rt.Services = map[string]*istiometrics.Service{}
	}
	if p := c.prev.Services[name]; p != nil && *p == *s {
		s = p
	}
	c.rt.Services[name] = s
}

// StatsConfigs are the stats configs of every chain of the runtime's
// listeners (istiometrics.Metrics.Configure takes them).
func (rt *Runtime) StatsConfigs() []*istiometrics.Config {
	seen := map[*istiometrics.Config]bool{}
	var out []*istiometrics.Config
	for _, l := range rt.Listeners {
		for _, c := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
			if c != nil && c.Stats != nil && !seen[c.Stats] {
				seen[c.Stats] = true
				out = append(out, c.Stats)
			}
		}
	}
	return out
}
