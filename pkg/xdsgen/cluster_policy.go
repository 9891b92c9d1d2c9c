package xdsgen

import (
	"math"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// A DestinationRule's traffic policy reaches a cluster the way Istio's
// cluster builder applies it (cluster_traffic_policy.go):
//
//   - Port-level settings for the cluster's port replace the rule's
//     top-level policy wholesale: a field the port level leaves out takes
//     its default, it is not inherited (GetPortLevelTrafficPolicy).
//   - A subset's policy (after its own port-level settings) overrides the
//     result field by field: connectionPool, outlierDetection,
//     loadBalancer, tls each as a whole. A subset port-level entry replaces
//     all four (MergeSubsetTrafficPolicy).
//   - Then, in order: connection pool (always, defaults included), HTTP/2
//     upgrade, outlier detection, load balancer (which reads whether
//     outlier detection is on, for locality failover).

// portPolicy is Istio's GetPortLevelTrafficPolicy: the policy's port-level
// settings for port if any (and true), else the policy itself.
func portPolicy(p *networking.TrafficPolicy, port uint32) (*networking.TrafficPolicy, bool) {
	if p == nil {
		return nil, false
	}
	for _, pl := range p.PortLevelSettings {
		if pl.GetPort() != nil && pl.GetPort().GetNumber() == port {
			return &networking.TrafficPolicy{
				ConnectionPool:   pl.ConnectionPool,
				LoadBalancer:     pl.LoadBalancer,
				OutlierDetection: pl.OutlierDetection,
				Tls:              pl.Tls,
			}, true
		}
	}
	return p, false
}

// mergedPolicy is the traffic policy for the cluster of (port, subset) of
// the rule's host: Istio's MergeSubsetTrafficPolicy.
func mergedPolicy(dr *model.DestinationRule, port uint32, subset string) *networking.TrafficPolicy {
	if dr == nil {
		return nil
	}
	top, _ := portPolicy(dr.Spec.TrafficPolicy, port)
	if subset == "" {
		return top
	}
	var sp *networking.TrafficPolicy
	for _, s := range dr.Spec.Subsets {
		if s.Name == subset {
			sp = s.TrafficPolicy
			break
		}
	}
	if sp == nil {
		return top
	}
	sp, portLevel := portPolicy(sp, port)
	if top == nil {
		return sp
	}
	out := &networking.TrafficPolicy{
		ConnectionPool:   top.ConnectionPool,
		LoadBalancer:     top.LoadBalancer,
		OutlierDetection: top.OutlierDetection,
		Tls:              top.Tls,
		Tunnel:           top.Tunnel,
		ProxyProtocol:    top.ProxyProtocol,
	}
	if sp.ConnectionPool != nil || portLevel {
		out.ConnectionPool = sp.ConnectionPool
	}
	if sp.OutlierDetection != nil || portLevel {
		out.OutlierDetection = sp.OutlierDetection
	}
	if sp.LoadBalancer != nil || portLevel {
		out.LoadBalancer = sp.LoadBalancer
	}
	if sp.Tls != nil || portLevel {
		out.Tls = sp.Tls
	}
	if sp.Tunnel != nil {
		out.Tunnel = sp.Tunnel
	}
	if sp.ProxyProtocol != nil {
		out.ProxyProtocol = sp.ProxyProtocol
	}
	return out
}

// clusterBuild is a cluster being generated and the HTTP protocol options
// that end up in its typed_extension_protocol_options.
type clusterBuild struct {
	c    *cluster.Cluster
	http *httpv3.HttpProtocolOptions
}

func (b *clusterBuild) httpOptions() *httpv3.HttpProtocolOptions {
	if b.http == nil {
		b.http = &httpv3.HttpProtocolOptions{}
	}
	return b.http
}

// setHTTP2 makes the cluster speak HTTP/2 (h2c) to its endpoints: Istio's
// setH2Options.
func (b *clusterBuild) setHTTP2() {
	b.httpOptions().UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &core.Http2ProtocolOptions{},
			},
		},
	}
}

func (b *clusterBuild) isHTTP2() bool {
	return b.http.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// finish marshals the protocol options into the cluster; options without
// an upstream protocol get explicit HTTP/1.1, as Istio's build does.
func (b *clusterBuild) finish() *cluster.Cluster {
	if b.http != nil {
		if b.http.UpstreamProtocolOptions == nil {
			b.http.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
						HttpProtocolOptions: &core.Http1ProtocolOptions{},
					},
				},
			}
		}
		if typed, err := anypb.New(b.http); err == nil {
			b.c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: typed}
		}
	}
	return b.c
}

// applyTrafficPolicy is Istio's applyTrafficPolicy for an outbound
// cluster. port is nil for clusters that are not a service port's.
func (g *generation) applyTrafficPolicy(b *clusterBuild, policy *networking.TrafficPolicy, port *registry.Port) {
	cp := policy.GetConnectionPool()
	if cp == nil {
		cp = &networking.ConnectionPoolSettings{}
	}
	g.applyConnectionPool(b, cp)
	applyH2Upgrade(b, port, g.push.Mesh, cp)
	applyOutlierDetection(b.c, policy.GetOutlierDetection())
	g.applyLoadBalancer(b.c, policy.GetLoadBalancer())
	if b.c.GetType() == cluster.Cluster_ORIGINAL_DST {
		b.c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
	}
}

// defaultThresholds are Istio's circuit breaker defaults: no limits except
// what a DestinationRule sets (Envoy's own defaults of 1024 connections,
// pending and active requests and 3 retries proved too low in meshes).
func defaultThresholds() *cluster.CircuitBreakers_Thresholds {
	return &cluster.CircuitBreakers_Thresholds{
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

// applyConnectionPool is Istio's applyConnectionPool: circuit breaker
// thresholds, connect timeout, TCP keepalive, and the common HTTP options
// (idle timeout, max requests per connection, max connection duration,
// HTTP/2 max concurrent streams); useClientProtocol makes the cluster
// speak the downstream's protocol.
func (g *generation) applyConnectionPool(b *clusterBuild, cp *networking.ConnectionPoolSettings) {
	c := b.c
	th := defaultThresholds()
	var idle = cp.GetHttp().GetIdleTimeout()
	var maxRequestsPerConnection, maxConcurrentStreams uint32
	if h := cp.Http; h != nil {
		if h.Http2MaxRequests > 0 {
			th.MaxRequests = wrapperspb.UInt32(uint32(h.Http2MaxRequests))
		}
		if h.Http1MaxPendingRequests > 0 {
			th.MaxPendingRequests = wrapperspb.UInt32(uint32(h.Http1MaxPendingRequests))
		}
		if h.MaxRetries > 0 {
			th.MaxRetries = wrapperspb.UInt32(uint32(h.MaxRetries))
		}
		maxRequestsPerConnection = uint32(h.MaxRequestsPerConnection)
		maxConcurrentStreams = uint32(h.MaxConcurrentStreams)
	}
	c.ConnectTimeout = g.connectTimeout()
	var maxConnectionDuration = cp.GetTcp().GetMaxConnectionDuration()
	if t := cp.Tcp; t != nil {
		if t.ConnectTimeout != nil {
			c.ConnectTimeout = t.ConnectTimeout
		}
		if t.MaxConnections > 0 {
			th.MaxConnections = wrapperspb.UInt32(uint32(t.MaxConnections))
		}
		if idle == nil {
			idle = t.IdleTimeout
		}
	}
	applyTCPKeepalive(c, g.push.Mesh.GetTcpKeepalive(), cp.GetTcp().GetTcpKeepalive())
	c.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{th}}
	if maxConnectionDuration != nil || idle != nil || maxRequestsPerConnection > 0 || maxConcurrentStreams > 0 {
		opts := b.httpOptions()
		if opts.CommonHttpProtocolOptions == nil {
			opts.CommonHttpProtocolOptions = &core.HttpProtocolOptions{}
		}
		if idle != nil {
			opts.CommonHttpProtocolOptions.IdleTimeout = idle
		}
		if maxRequestsPerConnection > 0 {
			opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(maxRequestsPerConnection)
		}
		if maxConnectionDuration != nil {
			opts.CommonHttpProtocolOptions.MaxConnectionDuration = maxConnectionDuration
		}
		if h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 != nil && maxConcurrentStreams > 0 {
			h2.MaxConcurrentStreams = wrapperspb.UInt32(maxConcurrentStreams)
		}
	}
	if cp.GetHttp().GetUseClientProtocol() {
		b.httpOptions().UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &core.Http1ProtocolOptions{},
				Http2ProtocolOptions: &core.Http2ProtocolOptions{},
			},
		}
	}
}

// applyTCPKeepalive is Istio's: the mesh's keepalive, then the rule's
// fields over it. An empty keepalive turns SO_KEEPALIVE on with the OS's
// timings.
func applyTCPKeepalive(c *cluster.Cluster, layers ...*networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive) {
	for _, ka := range layers {
		if ka == nil {
			continue
		}
		if c.UpstreamConnectionOptions == nil {
			c.UpstreamConnectionOptions = &cluster.UpstreamConnectionOptions{TcpKeepalive: &core.TcpKeepalive{}}
		}
		out := c.UpstreamConnectionOptions.TcpKeepalive
		if ka.Probes > 0 {
			out.KeepaliveProbes = wrapperspb.UInt32(ka.Probes)
		}
		if ka.Time != nil {
			out.KeepaliveTime = wrapperspb.UInt32(uint32(ka.Time.Seconds))
		}
		if ka.Interval != nil {
			out.KeepaliveInterval = wrapperspb.UInt32(uint32(ka.Interval.Seconds))
		}
	}
}

// applyH2Upgrade is Istio's: h2UpgradePolicy UPGRADE upgrades whatever
// the port; DO_NOT_UPGRADE keeps it; otherwise HTTP ports follow the
// mesh's h2UpgradePolicy.
func applyH2Upgrade(b *clusterBuild, port *registry.Port, mesh *meshv1alpha1.MeshConfig, cp *networking.ConnectionPoolSettings) {
	switch cp.GetHttp().GetH2UpgradePolicy() {
	case networking.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		b.setHTTP2()
		return
	case networking.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		return
	}
	if port != nil && !port.Protocol.IsHTTP() {
		return
	}
	if mesh.GetH2UpgradePolicy() == meshv1alpha1.MeshConfig_UPGRADE {
		b.setHTTP2()
	}
}

// applyOutlierDetection is Istio's translation: consecutive 5xx and
// gateway errors (enforced at 100% when set, off when 0), interval, base
// ejection time, max ejection percent, the local-origin split; success
// rate ejection off; minHealthPercent as the healthy panic threshold
// (Istio sets it even at 0, which turns Envoy's default 50% panic off).
//
// consecutiveErrors, deprecated and hidden in the API, is ignored as
// current Istio ignores it (applyOutlierDetection in istio/istio
// pilot/pkg/networking/core/cluster_traffic_policy.go has no branch for
// it), so Envoy's default applies: 5 consecutive 5xx eject a host.
// Validation warns about it (config.Warnings).
func applyOutlierDetection(c *cluster.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	// always_eject_one_host keeps what Istio's DestinationRule describes
	// and its tasks rely on: a failing host can be ejected even where the
	// 10% default of maxEjectionPercent is less than one host. Envoy made
	// that limit strict in 1.27 (envoyproxy/envoy#27909) and added this
	// field to ask for the old behaviour; without it outlier detection
	// does nothing on any service with fewer than ten endpoints.
	out := &cluster.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0), AlwaysEjectOneHost: wrapperspb.Bool(true)}
	enforce := func(v uint32) *wrapperspb.UInt32Value {
		if v > 0 {
			v = 100
		}
		return wrapperspb.UInt32(v)
	}
	if e := od.Consecutive_5XxErrors; e != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutive_5Xx = enforce(e.GetValue())
	}
	if e := od.ConsecutiveGatewayErrors; e != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutiveGatewayFailure = enforce(e.GetValue())
	}
	if od.Interval != nil {
		out.Interval = od.Interval
	}
	if od.BaseEjectionTime != nil {
		out.BaseEjectionTime = od.BaseEjectionTime
	}
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.MaxEjectionPercent))
	}
	if od.SplitExternalLocalOriginErrors {
		out.SplitExternalLocalOriginErrors = true
		if n := od.ConsecutiveLocalOriginFailures.GetValue(); n > 0 {
			out.ConsecutiveLocalOriginFailure = wrapperspb.UInt32(n)
			out.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(100)
		}
		out.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
	}
	c.OutlierDetection = out
	if od.MinHealthPercent >= 0 {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.MinHealthPercent)}
	}
}
