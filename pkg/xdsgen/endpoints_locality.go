package xdsgen

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Locality load balancing, as Istio's loadbalancer package writes it into
// each proxy's endpoints (the EDS of one proxy differs from another's):
//
//   - distribute: the first rule whose "from" matches the proxy's locality
//     sets the weight of every locality group matching a "to", split among
//     the groups a wildcard matches in proportion to their endpoint
//     weights; groups no "to" matches are emptied.
//   - failover (only with outlier detection, else Envoy could never tell
//     the local endpoints are gone): priority 0 for the proxy's own
//     region/zone/subzone, 1 for its zone, 2 for its region, 3 for other
//     regions, 4 for other regions when a failover rule for the proxy's
//     region names another; priorities are then renumbered without gaps.
//   - failoverPriority: endpoints are split by how many of the listed
//     labels (in order) they share with the proxy; failover then applies
//     within those priorities.
//
// The topology labels failoverPriority may name (topology.kubernetes.io/
// region, .../zone, topology.istio.io/subzone) are added to the proxy's and
// the endpoints' labels from their localities, as Istio does.

// Topology labels Istio derives from a locality.
const (
	labelRegion  = "topology.kubernetes.io/region"
	labelZone    = "topology.kubernetes.io/zone"
	labelSubzone = "topology.istio.io/subzone"
)

// localityLbSetting is Istio's GetLocalityLbSetting: the rule's setting
// unless it is disabled, else the mesh's. An unset mesh setting is Istio's
// default mesh config, {enabled: true}.
func (g *generation) localityLbSetting(dr *networking.LocalityLoadBalancerSetting) *networking.LocalityLoadBalancerSetting {
	if dr != nil {
		if dr.Enabled != nil && !dr.Enabled.Value {
			return nil
		}
		return dr
	}
	mesh := g.push.Mesh.GetLocalityLbSetting()
	if mesh == nil {
		return &networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(true)}
	}
	if mesh.Enabled != nil && !mesh.Enabled.Value {
		return nil
	}
	return mesh
}

func (g *generation) proxyLocality() *core.Locality {
	if l := model.ParseLocality(g.proxy.Locality); l != nil {
		return l
	}
	return &core.Locality{}
}

// proxyLabels are the proxy's labels with its topology labels added.
func (g *generation) proxyLabels() map[string]string {
	return augmentLabels(g.proxy.Labels, g.proxy.Locality)
}

func augmentLabels(in map[string]string, locality string) map[string]string {
	out := make(map[string]string, len(in)+3)
	for k, v := range in {
		out[k] = v
	}
	region, zone, subzone := splitLocality(locality)
	if region != "" {
		out[labelRegion] = region
	}
	if zone != "" {
		out[labelZone] = zone
	}
	if subzone != "" {
		out[labelSubzone] = subzone
	}
	return out
}

func splitLocality(l string) (region, zone, subzone string) {
	parts := strings.SplitN(l, "/", 3)
	switch len(parts) {
	case 1:
		return parts[0], "", ""
	case 2:
		return parts[0], parts[1], ""
	}
	return parts[0], parts[1], parts[2]
}

// applyEndpointLocality makes a cluster's endpoints relative to this
// proxy: Istio's EDS locality step, with the merged policy of the
// cluster's port and subset.
func (g *generation) applyEndpointLocality(cla *endpoint.ClusterLoadAssignment, groups [][]*registry.Endpoint, policy *networking.TrafficPolicy) {
	setting := g.localityLbSetting(policy.GetLoadBalancer().GetLocalityLbSetting())
	if setting == nil {
		return
	}
	applyLocalityLB(cla, groups, g.proxyLocality(), g.proxyLabels(), setting, policy.GetOutlierDetection() != nil)
}

// applyLocalityLB is Istio's ApplyLocalityLoadBalancer. groups are the
// registry endpoints behind each LocalityLbEndpoints, in the same order
// (nil when not known: failoverPriority then does nothing, as in Istio for
// DNS clusters).
func applyLocalityLB(cla *endpoint.ClusterLoadAssignment, groups [][]*registry.Endpoint, proxy *core.Locality,
	proxyLabels map[string]string, setting *networking.LocalityLoadBalancerSetting, enableFailover bool) {
	if setting == nil || cla == nil {
		return
	}
	switch {
	case setting.GetDistribute() != nil:
		applyLocalityWeights(proxy, cla, setting.GetDistribute())
	case enableFailover:
		if len(setting.FailoverPriority) > 0 {
			applyFailoverPriorities(cla, groups, proxyLabels, setting.FailoverPriority)
			if len(setting.Failover) != 0 {
				applyLocalityFailover(proxy, cla, setting.Failover)
			}
		} else {
			applyLocalityFailover(proxy, cla, setting.Failover)
		}
	}
}

// localityMatch is Istio's LocalityMatch: a rule locality, "*" parts and
// missing parts matching anything.
func localityMatch(l *core.Locality, rule string) bool {
	region, zone, subzone := splitLocality(rule)
	return (region == "*" || l.GetRegion() == region) &&
		(zone == "*" || zone == "" || l.GetZone() == zone) &&
		(subzone == "*" || subzone == "" || l.GetSubZone() == subzone)
}

// applyLocalityWeights is Istio's: weights for the proxy's "from", other
// localities emptied.
func applyLocalityWeights(proxy *core.Locality, cla *endpoint.ClusterLoadAssignment, distribute []*networking.LocalityLoadBalancerSetting_Distribute) {
	for _, d := range distribute {
		if d == nil || !localityMatch(proxy, d.From) {
			continue
		}
		unmatched := map[int]bool{}
		for i := range cla.Endpoints {
			unmatched[i] = true
		}
		for _, to := range slices.Sorted(maps.Keys(d.To)) {
			weight := d.To[to]
			original := map[int]uint32{}
			var total uint32
			for i, ep := range cla.Endpoints {
				if !unmatched[i] || !localityMatch(ep.Locality, to) {
					continue
				}
				delete(unmatched, i)
				w := uint32(1)
				if ep.LoadBalancingWeight != nil {
					w = ep.LoadBalancingWeight.Value
				}
				original[i] = w
				total += w
			}
			for i, w := range original {
				if dw := float64(w*weight) / float64(total); dw > 0 {
					cla.Endpoints[i].LoadBalancingWeight = wrapperspb.UInt32(uint32(math.Ceil(dw)))
				}
			}
		}
		for i := range unmatched {
			cla.Endpoints[i].LbEndpoints = nil
		}
		return
	}
}

// lbPriority is Istio's LbPriority: how far an endpoint's locality is from
// the proxy's.
func lbPriority(proxy, ep *core.Locality) int {
	if proxy.GetRegion() == ep.GetRegion() {
		if proxy.GetZone() == ep.GetZone() {
			if proxy.GetSubZone() == ep.GetSubZone() {
				return 0
			}
			return 1
		}
		return 2
	}
	return 3
}

// applyLocalityFailover is Istio's: priorities by distance, the failover
// rule for the proxy's region demoting regions other than its "to", kept
// under priorities failoverPriority already gave, then renumbered.
func applyLocalityFailover(proxy *core.Locality, cla *endpoint.ClusterLoadAssignment, failover []*networking.LocalityLoadBalancerSetting_Failover) {
	byPriority := map[int][]int{}
	for i, lle := range cla.Endpoints {
		p := lbPriority(proxy, lle.Locality)
		if p == 3 {
			for _, f := range failover {
				if f.From == proxy.GetRegion() {
					if lle.Locality == nil || lle.Locality.Region != f.To {
						p = 4
					}
					break
				}
			}
		}
		p += int(lle.Priority) * 5
		lle.Priority = uint32(p)
		byPriority[p] = append(byPriority[p], i)
	}
	renumber(cla.Endpoints, byPriority)
}

// renumber makes priorities run 0..N without gaps, in order.
func renumber(eps []*endpoint.LocalityLbEndpoints, byPriority map[int][]int) {
	ps := make([]int, 0, len(byPriority))
	for p := range byPriority {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	for i, p := range ps {
		for _, idx := range byPriority[p] {
			eps[idx].Priority = uint32(i)
		}
	}
}

// applyFailoverPriorities is Istio's: each locality group split by how
// many of the labels, in order, an endpoint shares with the proxy (a
// label may be "name=value" to match that value instead of the proxy's).
func applyFailoverPriorities(cla *endpoint.ClusterLoadAssignment, groups [][]*registry.Endpoint, proxyLabels map[string]string, priorities []string) {
	if len(proxyLabels) == 0 || len(groups) != len(cla.Endpoints) {
		return
	}
	names := make([]string, 0, len(priorities))
	overrides := map[string]string{}
	for _, l := range priorities {
		name, value, ok := strings.Cut(l, "=")
		names = append(names, name)
		if ok {
			overrides[name] = value
		}
	}
	var out []*endpoint.LocalityLbEndpoints
	for gi, lle := range cla.Endpoints {
		byPriority := map[int][]int{}
		for i, ep := range groups[gi] {
			labels := augmentLabels(ep.Labels, ep.Locality)
			p := 0
			for j, name := range names {
				want, ok := overrides[name]
				if !ok {
					want = proxyLabels[name]
				}
				if want != labels[name] {
					p = len(names) - j
					break
				}
			}
			byPriority[p] = append(byPriority[p], i)
		}
		ps := make([]int, 0, len(byPriority))
		for p := range byPriority {
			ps = append(ps, p)
		}
		sort.Ints(ps)
		for _, p := range ps {
			split := &endpoint.LocalityLbEndpoints{Locality: lle.Locality, Priority: uint32(p)}
			var weight uint32
			for _, i := range byPriority[p] {
				split.LbEndpoints = append(split.LbEndpoints, lle.LbEndpoints[i])
				weight += lle.LbEndpoints[i].GetLoadBalancingWeight().GetValue()
			}
			split.LoadBalancingWeight = wrapperspb.UInt32(weight)
			out = append(out, split)
		}
	}
	byPriority := map[int][]int{}
	for i, lle := range out {
		byPriority[int(lle.Priority)] = append(byPriority[int(lle.Priority)], i)
	}
	renumber(out, byPriority)
	cla.Endpoints = out
}

// destinationRuleFor is the DestinationRule this proxy uses for host.
func (g *generation) destinationRuleFor(host string) *model.DestinationRule {
	svcNS := ""
	if svcs := g.push.ServicesForHost(host); len(svcs) > 0 {
		svcNS = svcs[0].Namespace
	}
	return g.push.DestinationRule(g.proxy.Namespace, host, svcNS)
}
