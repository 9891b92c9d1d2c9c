package xdsgen

import (
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// defaultRingSize is Envoy's minimum_ring_size default, which Istio writes
// out when consistentHash names no algorithm.
const defaultRingSize = 1024

// applyLoadBalancer is Istio's applyLoadBalancer: locality balancing from
// the rule or the mesh, then the policy. With no policy set Istio uses
// LEAST_REQUEST (its default since 1.14; sluice's issue #2 said round
// robin, sluice follows Istio). consistentHash picks RING_HASH (or MAGLEV)
// on the cluster; the hash key itself goes on the routes (hashPolicies).
func (g *generation) applyLoadBalancer(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	locality := g.localityLbSetting(lb.GetLocalityLbSetting())
	enableFailover := c.OutlierDetection != nil
	// Locality weighted balancing when distribute is set, or failover is
	// configured with outlier detection on; without it a weighted locality
	// choice would skew LEAST_REQUEST and the others.
	if locality.GetDistribute() != nil ||
		(enableFailover && (locality.GetFailover() != nil || locality.GetFailoverPriority() != nil)) {
		if c.CommonLbConfig == nil {
			c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{}
		}
		c.CommonLbConfig.LocalityConfigSpecifier = &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &cluster.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}
	}
	if c.LoadAssignment != nil && locality != nil {
		// Clusters carrying their endpoints (STRICT_DNS) get the same
		// priorities and weights EDS does.
		applyLocalityLB(c.LoadAssignment, nil, g.proxyLocality(), nil, locality, enableFailover)
	}
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
		return
	}
	switch lb.GetSimple() {
	//nolint:staticcheck // LEAST_CONN is the deprecated name of LEAST_REQUEST
	case networking.LoadBalancerSettings_LEAST_CONN, networking.LoadBalancerSettings_LEAST_REQUEST:
		applyLeastRequest(c, lb)
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = cluster.Cluster_RANDOM
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		applyRoundRobin(c, lb)
	case networking.LoadBalancerSettings_PASSTHROUGH:
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LoadAssignment = nil
	default:
		applyLeastRequest(c, lb) // Istio's default
	}
	applyConsistentHash(c, lb)
}

func applyRoundRobin(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	if d := lb.GetWarmupDurationSecs(); d != nil {
		c.LbConfig = &cluster.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &cluster.Cluster_RoundRobinLbConfig{
			SlowStartConfig: &cluster.Cluster_SlowStartConfig{SlowStartWindow: d},
		}}
	}
}

func applyLeastRequest(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	c.LbPolicy = cluster.Cluster_LEAST_REQUEST
	if d := lb.GetWarmupDurationSecs(); d != nil {
		c.LbConfig = &cluster.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &cluster.Cluster_LeastRequestLbConfig{
			SlowStartConfig: &cluster.Cluster_SlowStartConfig{SlowStartWindow: d},
		}}
	}
}

// applyConsistentHash is Istio's ApplyRingHashLoadBalancer: maglev with its
// table size, ring hash with its minimum ring size, or — with neither named
// — ring hash with the deprecated minimumRingSize or 1024.
func applyConsistentHash(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	ch := lb.GetConsistentHash()
	if ch == nil {
		return
	}
	switch {
	case ch.GetMaglev() != nil:
		c.LbPolicy = cluster.Cluster_MAGLEV
		if n := ch.GetMaglev().TableSize; n != 0 {
			c.LbConfig = &cluster.Cluster_MaglevLbConfig_{MaglevLbConfig: &cluster.Cluster_MaglevLbConfig{
				TableSize: wrapperspb.UInt64(n),
			}}
		}
	case ch.GetRingHash() != nil:
		c.LbPolicy = cluster.Cluster_RING_HASH
		if n := ch.GetRingHash().MinimumRingSize; n != 0 {
			c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(n),
			}}
		}
	default:
		size := uint64(defaultRingSize)
		//nolint:staticcheck // the deprecated field is still honoured
		if ch.MinimumRingSize != 0 {
			size = ch.MinimumRingSize //nolint:staticcheck
		}
		c.LbPolicy = cluster.Cluster_RING_HASH
		c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(size),
		}}
	}
}

// hashPolicies is the route's hash_policy: one entry per destination of
// the route whose DestinationRule hashes (Istio's hashForHTTPDestination
// then consistentHashToHashPolicy), in destination order. A zero-weight
// destination of a split is left out, as its cluster is.
func (g *generation) hashPolicies(hr *networking.HTTPRoute, ns string, _ routeContext) []*route.RouteAction_HashPolicy {
	var out []*route.RouteAction_HashPolicy
	for _, d := range hr.Route {
		if len(hr.Route) > 1 && d.Weight == 0 {
			continue
		}
		if hp := hashPolicyOf(g.destinationHash(d.Destination, ns)); hp != nil {
			out = append(out, hp)
		}
	}
	return out
}

// destinationHash is the consistentHash that applies to a route
// destination: the subset's port-level, the subset's, the rule's
// port-level, else the rule's. Port-level settings only count when the
// destination names its port.
func (g *generation) destinationHash(d *networking.Destination, ns string) *networking.LoadBalancerSettings_ConsistentHashLB {
	host := config.ResolveHost(d.GetHost(), ns, "")
	dr := g.destinationRuleFor(host)
	if dr == nil {
		return nil
	}
	rule := dr.Spec
	portHash := func(pls []*networking.TrafficPolicy_PortTrafficPolicy) *networking.LoadBalancerSettings_ConsistentHashLB {
		if d.GetPort() == nil {
			return nil
		}
		for _, pl := range pls {
			if pl.GetPort().GetNumber() == d.GetPort().GetNumber() {
				return pl.GetLoadBalancer().GetConsistentHash()
			}
		}
		return nil
	}
	hash := rule.GetTrafficPolicy().GetLoadBalancer().GetConsistentHash()
	plsHash := portHash(rule.GetTrafficPolicy().GetPortLevelSettings())
	var subsetHash, subsetPLSHash *networking.LoadBalancerSettings_ConsistentHashLB
	for _, s := range rule.Subsets {
		if s.Name == d.GetSubset() {
			subsetHash = s.GetTrafficPolicy().GetLoadBalancer().GetConsistentHash()
			subsetPLSHash = portHash(s.GetTrafficPolicy().GetPortLevelSettings())
			break
		}
	}
	switch {
	case subsetPLSHash != nil:
		return subsetPLSHash
	case subsetHash != nil:
		return subsetHash
	case plsHash != nil:
		return plsHash
	}
	return hash
}

// serviceHash is the hash policy of a service port's default route (no
// VirtualService): the rule's consistentHash, or its port level's for the
// port (Istio's hashForService).
func (g *generation) serviceHash(svc *registry.Service, port uint32) []*route.RouteAction_HashPolicy {
	dr := g.push.DestinationRule(g.proxy.Namespace, svc.Hostname, svc.Namespace)
	if dr == nil {
		return nil
	}
	tp := dr.Spec.GetTrafficPolicy()
	hash := tp.GetLoadBalancer().GetConsistentHash()
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			if ph := pl.GetLoadBalancer().GetConsistentHash(); ph != nil {
				hash = ph
			}
			break
		}
	}
	if hp := hashPolicyOf(hash); hp != nil {
		return []*route.RouteAction_HashPolicy{hp}
	}
	return nil
}

// withServiceHash sets a default route's hash policy for svc's port.
func (g *generation) withServiceHash(r *route.Route, svc *registry.Service, port uint32) *route.Route {
	if ra := r.GetRoute(); ra != nil {
		ra.HashPolicy = g.serviceHash(svc, port)
	}
	return r
}

// hashPolicyOf is Istio's consistentHashToHashPolicy.
func hashPolicyOf(ch *networking.LoadBalancerSettings_ConsistentHashLB) *route.RouteAction_HashPolicy {
	switch key := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Header_{
			Header: &route.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		var ttl *durationpb.Duration
		if t := key.HttpCookie.GetTtl(); t != nil {
			ttl = t
		}
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
			Cookie: &route.RouteAction_HashPolicy_Cookie{Name: key.HttpCookie.GetName(), Ttl: ttl, Path: key.HttpCookie.GetPath()},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: key.UseSourceIp},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	return nil
}
