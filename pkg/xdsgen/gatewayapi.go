package xdsgen

import (
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// InvalidBackendCluster is the cluster a weighted share of requests goes
// to when the Gateway API route's backend cannot be used. No such cluster
// exists; with cluster_not_found_response_code INTERNAL_SERVER_ERROR Envoy
// answers that share 500, as the Gateway API requires.
const InvalidBackendCluster = "gateway-api-invalid-backend"

// gatewayAPIRoute gives an Envoy route converted from a Gateway API route
// what its VirtualService cannot say (model.VirtualService.GatewayAPI):
// PathPrefix matches whole path segments (path_separated_prefix), a
// redirect may replace the matched prefix (prefix_rewrite), and the weight
// of unusable backends is answered 500.
func gatewayAPIRoute(r *route.Route, vs *model.VirtualService, hr *networking.HTTPRoute) {
	sem := vs.GatewayAPI
	if sem == nil {
		return
	}
	if p, ok := r.GetMatch().GetPathSpecifier().(*route.RouteMatch_Prefix); ok && sem.SegmentPrefix() &&
		p.Prefix != "/" && !strings.HasSuffix(p.Prefix, "/") {
		r.Match.PathSpecifier = &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p.Prefix}
	}
	ex := sem.Extra(hr)
	if ex == nil {
		return
	}
	if ex.RedirectPrefix != nil {
		if rd := r.GetRedirect(); rd != nil {
			rd.PathRewriteSpecifier = &route.RedirectAction_PrefixRewrite{PrefixRewrite: *ex.RedirectPrefix}
		}
	}
	if ex.InvalidWeight > 0 {
		ra := r.GetRoute()
		if ra == nil {
			return
		}
		wc := ra.GetWeightedClusters()
		if wc == nil {
			w := uint32(1)
			if len(hr.Route) == 1 && hr.Route[0].Weight > 0 {
				w = uint32(hr.Route[0].Weight)
			}
			wc = &route.WeightedCluster{Clusters: []*route.WeightedCluster_ClusterWeight{{Name: ra.GetCluster(), Weight: wrapUint32(w)}}}
			ra.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
		}
		for _, c := range wc.Clusters {
			if c.Name == InvalidBackendCluster {
				return // the action is shared by several matches: done already
			}
		}
		wc.Clusters = append(wc.Clusters, &route.WeightedCluster_ClusterWeight{Name: InvalidBackendCluster, Weight: wrapUint32(ex.InvalidWeight)})
		ra.ClusterNotFoundResponseCode = route.RouteAction_INTERNAL_SERVER_ERROR
	}
}
