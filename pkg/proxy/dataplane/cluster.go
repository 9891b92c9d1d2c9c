package dataplane

import (
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// httpProtocolOptionsKey is where Envoy reads a cluster's upstream HTTP
// options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// checkCluster rejects what sluice does not implement and returns the EDS
// service name for EDS clusters. Everything it lets through, buildCluster
// honours.
func checkCluster(c *cluster.Cluster) (string, error) {
	if len(c.HealthChecks) > 0 {
		return "", fmt.Errorf("health_checks are not supported")
	}
	if err := checkOutlier(c.OutlierDetection); err != nil {
		return "", fmt.Errorf("outlier_detection: %w", err)
	}
	if err := checkCircuitBreakers(c.CircuitBreakers); err != nil {
		return "", fmt.Errorf("circuit_breakers: %w", err)
	}
	if err := checkCommonLb(c.CommonLbConfig); err != nil {
		return "", fmt.Errorf("common_lb_config: %w", err)
	}
	if o := c.UpstreamConnectionOptions; o != nil && (o.SetLocalInterfaceNameOnUpstreamConnections || o.HappyEyeballsConfig != nil) {
		return "", fmt.Errorf("upstream_connection_options: only tcp_keepalive is supported")
	}
	for key := range c.TypedExtensionProtocolOptions {
		if key != httpProtocolOptionsKey {
			return "", fmt.Errorf("typed_extension_protocol_options %q is not supported", key)
		}
	}
	if _, err := httpOptions(c); err != nil {
		return "", err
	}
	if c.TransportSocketMatcher != nil {
		return "", fmt.Errorf("transport_socket_matcher is not supported; use transport_socket_matches")
	}
	if c.LoadBalancingPolicy != nil {
		return "", fmt.Errorf("load_balancing_policy is not supported; use lb_policy")
	}
	switch c.GetType() {
	case cluster.Cluster_EDS, cluster.Cluster_STATIC, cluster.Cluster_STRICT_DNS, cluster.Cluster_LOGICAL_DNS:
		if _, err := lbConfig(c); err != nil {
			return "", err
		}
		if c.GetType() != cluster.Cluster_EDS {
			return "", nil
		}
		if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
			return n, nil
		}
		return c.Name, nil
	case cluster.Cluster_ORIGINAL_DST:
		if c.LbPolicy != cluster.Cluster_CLUSTER_PROVIDED && c.LbPolicy != cluster.Cluster_ROUND_ROBIN {
			return "", fmt.Errorf("ORIGINAL_DST clusters take lb_policy CLUSTER_PROVIDED, not %s", c.LbPolicy)
		}
		return "", nil
	}
	if c.GetClusterType() != nil {
		return "", fmt.Errorf("custom cluster_type %q is not supported", c.GetClusterType().GetName())
	}
	return "", fmt.Errorf("cluster type %s is not supported", c.GetType())
}

// checkOutlier accepts Envoy's consecutive-error detection, the only kind
// sluice implements (Istio turns success-rate detection off).
func checkOutlier(od *cluster.OutlierDetection) error {
	if od == nil {
		return nil
	}
	if v := wrappedOr(od.EnforcingSuccessRate, 100); v != 0 {
		return fmt.Errorf("success rate ejection (enforcing_success_rate %d) is not supported; set it to 0", v)
	}
	if od.SplitExternalLocalOriginErrors {
		if v := wrappedOr(od.EnforcingLocalOriginSuccessRate, 100); v != 0 {
			return fmt.Errorf("local origin success rate ejection (enforcing_local_origin_success_rate %d) is not supported; set it to 0", v)
		}
	}
	if wrappedOr(od.EnforcingFailurePercentage, 0) != 0 || wrappedOr(od.EnforcingFailurePercentageLocalOrigin, 0) != 0 {
		return fmt.Errorf("failure percentage ejection is not supported")
	}
	if d := od.MaxEjectionTimeJitter; d != nil && d.AsDuration() != 0 {
		return fmt.Errorf("max_ejection_time_jitter is not supported")
	}
	if len(od.Monitors) > 0 {
		return fmt.Errorf("monitors are not supported")
	}
	if od.GetDetectDegradedHosts().GetValue() {
		return fmt.Errorf("detect_degraded_hosts is not supported")
	}
	base := durationOr(od.BaseEjectionTime, upstream.DefaultBaseEjectionTime)
	if maxT := durationOr(od.MaxEjectionTime, max(upstream.DefaultMaxEjectionTime, base)); maxT < base {
		return fmt.Errorf("max_ejection_time cannot be smaller than base_ejection_time")
	}
	return nil
}

func checkCircuitBreakers(cb *cluster.CircuitBreakers) error {
	if cb == nil {
		return nil
	}
	if len(cb.PerHostThresholds) > 0 {
		return fmt.Errorf("per_host_thresholds are not supported")
	}
	for _, t := range cb.Thresholds {
		if t.RetryBudget != nil {
			return fmt.Errorf("retry_budget is not supported")
		}
		if t.MaxConnectionPools != nil {
			return fmt.Errorf("max_connection_pools is not supported")
		}
	}
	return nil
}

func checkCommonLb(cl *cluster.Cluster_CommonLbConfig) error {
	if cl == nil {
		return nil
	}
	if cl.GetZoneAwareLbConfig() != nil {
		return fmt.Errorf("zone_aware_lb_config is not supported")
	}
	if ch := cl.ConsistentHashingLbConfig; ch != nil && (ch.UseHostnameForHashing || ch.HashBalanceFactor != nil) {
		return fmt.Errorf("consistent_hashing_lb_config (use_hostname_for_hashing, hash_balance_factor) is not supported")
	}
	if cl.IgnoreNewHostsUntilFirstHc || cl.CloseConnectionsOnHostSetChange || cl.OverrideHostStatus != nil {
		return fmt.Errorf("ignore_new_hosts_until_first_hc, close_connections_on_host_set_change and override_host_status are not supported")
	}
	return nil
}

// lbConfig reads the balancing policy and its config.
func lbConfig(c *cluster.Cluster) (upstream.LBConfig, error) {
	lb := upstream.LBConfig{PanicThreshold: upstream.DefaultPanicThreshold}
	slowStart := func(s *cluster.Cluster_SlowStartConfig) error {
		if s != nil {
			return fmt.Errorf("slow_start_config (Istio's warmupDurationSecs) is not supported yet")
		}
		return nil
	}
	switch c.LbPolicy {
	case cluster.Cluster_ROUND_ROBIN:
		lb.Policy = upstream.RoundRobin
		if err := slowStart(c.GetRoundRobinLbConfig().GetSlowStartConfig()); err != nil {
			return lb, err
		}
	case cluster.Cluster_LEAST_REQUEST:
		lb.Policy = upstream.LeastRequest
		cfg := c.GetLeastRequestLbConfig()
		lb.ChoiceCount = int(wrappedOr(cfg.GetChoiceCount(), upstream.DefaultChoiceCount))
		if b := cfg.GetActiveRequestBias(); b != nil && b.DefaultValue != 1 {
			return lb, fmt.Errorf("least_request_lb_config.active_request_bias other than 1.0 is not supported")
		}
		if err := slowStart(cfg.GetSlowStartConfig()); err != nil {
			return lb, err
		}
	case cluster.Cluster_RANDOM:
		lb.Policy = upstream.Random
	case cluster.Cluster_RING_HASH:
		lb.Policy = upstream.RingHash
		cfg := c.GetRingHashLbConfig()
		if cfg.GetHashFunction() != cluster.Cluster_RingHashLbConfig_XX_HASH {
			return lb, fmt.Errorf("ring_hash_lb_config.hash_function %s is not supported; use XX_HASH", cfg.GetHashFunction())
		}
		lb.MinRingSize = wrappedOr(cfg.GetMinimumRingSize(), upstream.DefaultMinRingSize)
		lb.MaxRingSize = wrappedOr(cfg.GetMaximumRingSize(), upstream.DefaultMaxRingSize)
		if lb.MinRingSize > lb.MaxRingSize {
			return lb, fmt.Errorf("ring hash: minimum_ring_size (%d) > maximum_ring_size (%d)", lb.MinRingSize, lb.MaxRingSize)
		}
	case cluster.Cluster_MAGLEV:
		lb.Policy = upstream.Maglev
		lb.TableSize = wrappedOr(c.GetMaglevLbConfig().GetTableSize(), upstream.DefaultMaglevTableSize)
		if !isPrime(lb.TableSize) {
			return lb, fmt.Errorf("maglev table_size %d is not a prime number", lb.TableSize)
		}
	default:
		return lb, fmt.Errorf("lb_policy %s is not supported", c.LbPolicy)
	}
	if cl := c.CommonLbConfig; cl != nil {
		if p := cl.HealthyPanicThreshold; p != nil {
			lb.PanicThreshold = p.Value
		}
		lb.LocalityWeighted = cl.GetLocalityWeightedLbConfig() != nil
	}
	return lb, nil
}

// httpOptions reads the upstream HTTP protocol options, rejecting the ones
// sluice does not implement.
func httpOptions(c *cluster.Cluster) (*httpv3.HttpProtocolOptions, error) {
	raw := c.TypedExtensionProtocolOptions[httpProtocolOptionsKey]
	if raw == nil {
		return nil, nil
	}
	var po httpv3.HttpProtocolOptions
	if err := raw.UnmarshalTo(&po); err != nil {
		return nil, fmt.Errorf("http protocol options: %w", err)
	}
	if err := po.ValidateAll(); err != nil {
		return nil, fmt.Errorf("http protocol options: %w", err)
	}
	if po.UpstreamHttpProtocolOptions != nil || len(po.HttpFilters) > 0 || po.HeaderValidationConfig != nil ||
		po.OutlierDetection != nil || len(po.RequestMirrorPolicies) > 0 || len(po.HashPolicy) > 0 || po.RetryPolicy != nil {
		return nil, fmt.Errorf("http protocol options: only common_http_protocol_options and the upstream protocol are supported")
	}
	if co := po.CommonHttpProtocolOptions; co != nil {
		if co.MaxHeadersCount != nil || co.MaxStreamDuration != nil || co.HeadersWithUnderscoresAction != core.HttpProtocolOptions_ALLOW ||
			co.MaxConnectionDurationJitter != nil {
			return nil, fmt.Errorf("common_http_protocol_options: only idle_timeout, max_connection_duration and max_requests_per_connection are supported")
		}
	}
	h2 := func(o *core.Http2ProtocolOptions) error {
		if o == nil {
			return nil
		}
		if o.MaxConcurrentStreams != nil {
			return fmt.Errorf("http2_protocol_options.max_concurrent_streams (Istio's maxConcurrentStreams) is not supported yet")
		}
		return nil
	}
	switch u := po.UpstreamProtocolOptions.(type) {
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		if err := h2(u.ExplicitHttpConfig.GetHttp2ProtocolOptions()); err != nil {
			return nil, err
		}
		if u.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
			return nil, fmt.Errorf("HTTP/3 upstreams are not supported")
		}
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		if err := h2(u.UseDownstreamProtocolConfig.GetHttp2ProtocolOptions()); err != nil {
			return nil, err
		}
		if u.UseDownstreamProtocolConfig.GetHttp3ProtocolOptions() != nil {
			return nil, fmt.Errorf("HTTP/3 upstreams are not supported")
		}
	case *httpv3.HttpProtocolOptions_AutoConfig:
		return nil, fmt.Errorf("http protocol options: auto_config (ALPN) is not supported")
	}
	return &po, nil
}

// thresholds reads the default-priority circuit breaker thresholds, with
// Envoy's defaults for what is unset.
func thresholds(cb *cluster.CircuitBreakers) upstream.Thresholds {
	th := upstream.DefaultThresholds()
	for _, t := range cb.GetThresholds() {
		if t.Priority != core.RoutingPriority_DEFAULT {
			continue // sluice routes everything at default priority
		}
		th.MaxConnections = uint64(wrappedOr(t.MaxConnections, upstream.DefaultMaxConnections))
		th.MaxPendingRequests = uint64(wrappedOr(t.MaxPendingRequests, upstream.DefaultMaxPendingRequests))
		th.MaxRequests = uint64(wrappedOr(t.MaxRequests, upstream.DefaultMaxRequests))
		th.MaxRetries = uint64(wrappedOr(t.MaxRetries, upstream.DefaultMaxRetries))
		break // Envoy uses the first thresholds for a priority
	}
	return th
}

func outlierConfig(od *cluster.OutlierDetection) *upstream.OutlierConfig {
	if od == nil {
		return nil
	}
	base := durationOr(od.BaseEjectionTime, upstream.DefaultBaseEjectionTime)
	return &upstream.OutlierConfig{
		Interval:                    durationOr(od.Interval, upstream.DefaultOutlierInterval),
		BaseEjectionTime:            base,
		MaxEjectionTime:             durationOr(od.MaxEjectionTime, max(upstream.DefaultMaxEjectionTime, base)),
		MaxEjectionPercent:          wrappedOr(od.MaxEjectionPercent, upstream.DefaultMaxEjectionPercent),
		AlwaysEjectOneHost:          od.GetAlwaysEjectOneHost().GetValue(),
		Consecutive5xx:              wrappedOr(od.Consecutive_5Xx, upstream.DefaultConsecutive5xx),
		Consecutive5xxEnforcing:     wrappedOr(od.EnforcingConsecutive_5Xx, upstream.DefaultEnforcingConsecutive5xx),
		ConsecutiveGateway:          wrappedOr(od.ConsecutiveGatewayFailure, upstream.DefaultConsecutiveGateway),
		ConsecutiveGatewayEnforcing: wrappedOr(od.EnforcingConsecutiveGatewayFailure, 0),
		SplitLocalOrigin:            od.SplitExternalLocalOriginErrors,
		ConsecutiveLocal:            wrappedOr(od.ConsecutiveLocalOriginFailure, upstream.DefaultConsecutiveLocalOrigin),
		ConsecutiveLocalEnforcing:   wrappedOr(od.EnforcingConsecutiveLocalOriginFailure, 100),
	}
}

// buildCluster compiles a checked cluster and its endpoints, reusing the
// previous cluster's hosts, pool and live state where unchanged.
// clusterEnv is what every cluster of a proxy shares: its name overrides
// and mesh identity.
type clusterEnv struct {
	hosts    *upstream.Hosts
	identity upstream.WorkloadIdentity
	sourceIP netip.Addr
}

func buildCluster(c *cluster.Cluster, cla *endpoint.ClusterLoadAssignment, prev *upstream.Cluster, stats *StatsStore, env clusterEnv) (*upstream.Cluster, error) {
	po, err := httpOptions(c)
	if err != nil {
		return nil, err
	}
	tlsOpts, err := upstreamTLS(c.TransportSocket)
	if err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	th := thresholds(c.CircuitBreakers)
	topts := upstream.TransportOptions{ConnectTimeout: c.GetConnectTimeout().AsDuration(), TLS: tlsOpts, Hosts: env.hosts, SourceIP: env.sourceIP}
	if tlsOpts.Workload || tlsOpts.MeshPeer {
		topts.Identity = env.identity
	}
	if bc := c.UpstreamBindConfig; bc != nil {
		if topts.BindSource, err = bindSource(bc); err != nil {
			return nil, err
		}
	}
	if topts.ConnectTimeout == 0 {
		topts.ConnectTimeout = 5 * time.Second // Envoy's default
	}
	switch u := po.GetUpstreamProtocolOptions().(type) {
	case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
		topts.HTTP2 = u.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil
	case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
		topts.UseDownstreamProtocol = true
	}
	if co := po.GetCommonHttpProtocolOptions(); co != nil {
		if co.IdleTimeout != nil {
			topts.IdleTimeout = co.IdleTimeout.AsDuration()
			if topts.IdleTimeout == 0 {
				topts.IdleTimeout = 100 * 365 * 24 * time.Hour // 0 disables the idle timeout
			}
		}
		topts.MaxRequestsPerConnection = co.MaxRequestsPerConnection.GetValue()
		topts.MaxConnectionDuration = co.MaxConnectionDuration.AsDuration()
	}
	if ka := c.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka != nil {
		topts.Keepalive = upstream.KeepaliveOptions{
			Enabled:  true,
			Probes:   ka.KeepaliveProbes.GetValue(),
			Idle:     time.Duration(ka.KeepaliveTime.GetValue()) * time.Second,
			Interval: time.Duration(ka.KeepaliveInterval.GetValue()) * time.Second,
		}
	}
	st := stats.Cluster(c.Name)
	uc := &upstream.Cluster{
		Name: c.Name, ConnectTimeout: topts.ConnectTimeout, HTTP2: topts.HTTP2,
		UseDownstreamProtocol: topts.UseDownstreamProtocol, Stats: st, Limits: th,
		Outlier: outlierConfig(c.OutlierDetection),
	}
	ts := transportSet{prev: prev, stats: st, identity: env.identity}
	uc.Transport = ts.get(topts)
	matches, err := ts.compileMatches(c.TransportSocketMatches, topts)
	if err != nil {
		return nil, err
	}
	uc.Transports = ts.used
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		uc.Kind = upstream.OriginalDst
		uc.OriginalDstHeader = c.GetOriginalDstLbConfig().GetHttpHeaderName()
		if h := uc.OriginalDstHeader; h != ":authority" && h != "host" {
			// Canonical once here, not by Header.Get per request.
			uc.OriginalDstHeader = http.CanonicalHeaderKey(h)
		}
		if !c.GetOriginalDstLbConfig().GetUseHttpHeader() {
			uc.OriginalDstHeader = ":authority"
		}
		uc.Init(prev)
		return uc, nil
	}
	if uc.LB, err = lbConfig(c); err != nil {
		return nil, err
	}
	if cla != nil && cla.Policy != nil {
		p := cla.Policy
		if len(p.DropOverloads) > 0 || p.WeightedPriorityHealth {
			return nil, fmt.Errorf("endpoints policy: drop_overloads and weighted_priority_health are not supported")
		}
		uc.LB.OverprovisioningFactor = wrappedOr(p.OverprovisioningFactor, upstream.DefaultOverprovisioningFactor)
	}
	prios, err := hostsOf(cla, prev, matches)
	if err != nil {
		return nil, err
	}
	uc.Priorities = prios
	uc.Init(prev)
	return uc, nil
}

// hostsOf turns an assignment into priorities of localities of hosts,
// reusing the previous cluster's host records where address, weight and
// locality are unchanged (their counters and ejection state carry over).
func hostsOf(cla *endpoint.ClusterLoadAssignment, prev *upstream.Cluster, matches []socketMatch) ([]upstream.PriorityLevel, error) {
	old := map[string]*upstream.Host{}
	if prev != nil {
		for _, h := range prev.Hosts {
			old[h.Address] = h
		}
	}
	var prios []upstream.PriorityLevel
	for _, lle := range cla.GetEndpoints() {
		locality := localityString(lle.GetLocality())
		lh := upstream.LocalityHosts{Locality: locality, Weight: lle.GetLoadBalancingWeight().GetValue()}
		for _, lbe := range lle.GetLbEndpoints() {
			switch lbe.HealthStatus {
			case core.HealthStatus_UNKNOWN, core.HealthStatus_HEALTHY:
			default:
				return nil, fmt.Errorf("endpoint health_status %s is not supported", lbe.HealthStatus)
			}
			addr, err := endpointAddress(lbe.GetEndpoint().GetAddress())
			if err != nil {
				return nil, err
			}
			weight := lbe.GetLoadBalancingWeight().GetValue()
			if weight == 0 {
				weight = 1
			}
			t := matchTransport(matches, lbe.GetMetadata(), lle.GetMetadata())
			if h, ok := old[addr]; ok && h.Weight == weight && h.Locality == locality && h.Transport == t {
				lh.Hosts = append(lh.Hosts, h)
				continue
			}
			workload := lbe.GetMetadata().GetFilterMetadata()["istio"].GetFields()["workload"].GetStringValue()
			lh.Hosts = append(lh.Hosts, &upstream.Host{Address: addr, Weight: weight, Locality: locality, Workload: workload, Transport: t})
		}
		p := int(lle.Priority)
		for len(prios) <= p {
			prios = append(prios, upstream.PriorityLevel{})
		}
		prios[p].Localities = append(prios[p].Localities, lh)
	}
	for i := range prios {
		sort.SliceStable(prios[i].Localities, func(a, b int) bool {
			return prios[i].Localities[a].Locality < prios[i].Localities[b].Locality
		})
	}
	return prios, nil
}

// endpointAddress is how a host is dialled: host:port, or for a pipe
// (unix domain socket) endpoint upstream.PipeAddress of its path.
func endpointAddress(a *core.Address) (string, error) {
	if p := a.GetPipe(); p != nil {
		if p.Path == "" {
			return "", fmt.Errorf("endpoint pipe address has no path")
		}
		return upstream.PipeAddress(p.Path), nil
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", fmt.Errorf("endpoint address: only socket and pipe addresses are supported")
	}
	return hostport.Join(sa.Address, sa.GetPortValue()), nil
}

func localityString(l *core.Locality) string {
	if l == nil {
		return ""
	}
	s := l.Region + "/" + l.Zone + "/" + l.SubZone
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// wrappedOr is a protobuf wrapper's value, or def when it is unset.
func wrappedOr[T uint32 | uint64, W interface {
	comparable
	GetValue() T
}](w W, def T) T {
	var zero W
	if w == zero {
		return def
	}
	return w.GetValue()
}

func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// isPrime is Envoy's check of maglev table sizes.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x%2 == 0 || x == 0 {
		return false
	}
	for f := uint64(3); f*f <= x; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}
