package analysis

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/virtualservice/jwtclaimroute.go.
func init() {
	register(&Analyzer{
		Name:        "virtualservice.JWTClaimRouteAnalyzer",
		Workloads:   true,
		Description: "Checks the VirtualService using JWT claim based routing has corresponding RequestAuthentication",
		Codes:       []string{"IST0149"},
		run:         analyzeJWTClaimRoutes,
	})
}

func analyzeJWTClaimRoutes(c *Context) {
	raSelectors := map[string][]map[string]string{}
	for _, o := range c.Objects(config.KindRequestAuthentication) {
		ra := o.Spec.(*securityv1beta1.RequestAuthentication)
		raSelectors[o.Namespace] = append(raSelectors[o.Namespace], ra.GetSelector().GetMatchLabels())
	}
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		key := jwtClaimRouteKey(vs)
		if key == "" {
			continue
		}
		for _, name := range vs.Gateways {
			if name == meshGateway {
				continue
			}
			ns, n := shortOrFullName(o.Namespace, name)
			gw := c.Find(config.KindGateway, ns, n)
			if gw == nil {
				continue
			}
			sel := gw.Spec.(*networking.Gateway).Selector
			for _, pod := range c.Objects(KindPod) {
				if !selects(sel, pod.Labels) {
					continue
				}
				selectors := append(append([]map[string]string(nil), raSelectors[c.IstioNamespace]...), raSelectors[pod.Namespace]...)
				if !anySelects(selectors, pod.Labels) {
					c.report(JwtClaimBasedRoutingWithoutRequestAuthN, o, "", key, ResourceRef{Namespace: ns, Name: n}.FullName(), pod.Name)
				}
			}
		}
	}
}

func anySelects(selectors []map[string]string, labels map[string]string) bool {
	for _, s := range selectors {
		if selects(s, labels) {
			return true
		}
	}
	return false
}

// jwtClaimRouteKey returns a header or withoutHeaders key of the
// VirtualService's matches that routes on a JWT claim
// (routeBasedOnJWTClaimKey, pilot/pkg/security/authn jwt.ToRoutingClaim).
func jwtClaimRouteKey(vs *networking.VirtualService) string {
	for _, r := range vs.GetHttp() {
		for _, m := range r.GetMatch() {
			for _, keys := range [][]string{sortedKeys(m.GetHeaders()), sortedKeys(m.GetWithoutHeaders())} {
				for _, k := range keys {
					if isRoutingClaim(k) {
						return k
					}
				}
			}
		}
	}
	return ""
}

const headerJWTClaim = "@request.auth.claims"

func isRoutingClaim(header string) bool {
	if !strings.HasPrefix(strings.ToLower(header), headerJWTClaim) {
		return false
	}
	name := header[len(headerJWTClaim):]
	return strings.HasPrefix(name, ".") && len(name) > 1 ||
		strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") && len(name) > 2
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
