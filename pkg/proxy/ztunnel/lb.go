package ztunnel

import "github.com/sluice-mesh/sluice/pkg/workloadapi"

// bestRanked keeps the endpoints of the best locality rank, as
// ztunnel's load_balance in STRICT and FAILOVER mode (src/state.rs): an
// endpoint's rank is how many of the service's routing preferences it
// shares with the source, counted in order until the first that differs
// (NETWORK first counts for all the others when it matches, and is
// skipped when it does not); STRICT drops an endpoint that does not match
// them all. istiod sets these from internalTrafficPolicy: Local and
// trafficDistribution (pilot/pkg/serviceregistry/ambient/services.go).
func bestRanked(eps []endpoint, src *workload, lb *workloadapi.LoadBalancing) []endpoint {
	prefs := lb.GetRoutingPreference()
	networkFirst := len(prefs) > 0 && prefs[0] == workloadapi.LoadBalancing_NETWORK
	best, out := -1, []endpoint(nil)
	for _, ep := range eps {
		rank, adjust := 0, 0
		for _, scope := range prefs {
			match := sameScope(scope, src, ep.wl)
			if scope == workloadapi.LoadBalancing_NETWORK && networkFirst {
				if !match {
					continue
				}
				adjust = len(prefs) - 1
			}
			if !match {
				break
			}
			rank++
		}
		if lb.GetMode() == workloadapi.LoadBalancing_STRICT && rank != len(prefs) {
			continue
		}
		rank += adjust
		switch {
		case rank > best:
			best, out = rank, []endpoint{ep}
		case rank == best:
			out = append(out, ep)
		}
	}
	return out
}

// sameScope tells whether source and destination share a routing scope.
func sameScope(scope workloadapi.LoadBalancing_Scope, src, dst *workload) bool {
	sl, dl := src.GetLocality(), dst.GetLocality()
	switch scope {
	case workloadapi.LoadBalancing_REGION:
		return sl.GetRegion() == dl.GetRegion()
	case workloadapi.LoadBalancing_ZONE:
		return sl.GetZone() == dl.GetZone()
	case workloadapi.LoadBalancing_SUBZONE:
		return sl.GetSubzone() == dl.GetSubzone()
	case workloadapi.LoadBalancing_NODE:
		return src.GetNode() == dst.GetNode()
	case workloadapi.LoadBalancing_CLUSTER:
		return src.GetClusterId() == dst.GetClusterId()
	case workloadapi.LoadBalancing_NETWORK:
		return src.GetNetwork() == dst.GetNetwork()
	}
	return false
}
