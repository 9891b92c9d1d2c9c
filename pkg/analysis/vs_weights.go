package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): weights that do not add up to 100.
func init() {
	register(&Analyzer{
		Name:        "sluice.RouteWeightsAnalyzer",
		Description: "Checks that the destination weights of each route add up to 100 (Istio scales other sums silently).",
		Codes:       []string{"SLU0003"},
		run:         analyzeRouteWeights,
	})
}

// analyzeRouteWeights reports each http, tcp and tls route whose
// destination weights are written and do not add up to 100: Istio scales
// them to 100 silently (it no longer requires the sum). Unwritten weights
// (a lone destination gets 100) and a sum of 0 (a validation error,
// config.destinationWeights and IST0106) are not reported here.
func analyzeRouteWeights(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		for i, r := range vs.GetHttp() {
			weights := make([]int32, 0, len(r.GetRoute()))
			for _, d := range r.GetRoute() {
				weights = append(weights, d.GetWeight())
			}
			checkWeights(c, o, "HTTP", routeLabel(r, i), weights)
		}
		for i, r := range vs.GetTcp() {
			weights := make([]int32, 0, len(r.GetRoute()))
			for _, d := range r.GetRoute() {
				weights = append(weights, d.GetWeight())
			}
			checkWeights(c, o, "TCP", sprintf("tcp[%d]", i), weights)
		}
		for i, r := range vs.GetTls() {
			weights := make([]int32, 0, len(r.GetRoute()))
			for _, d := range r.GetRoute() {
				weights = append(weights, d.GetWeight())
			}
			checkWeights(c, o, "TLS", sprintf("tls[%d]", i), weights)
		}
	}
}

func checkWeights(c *Context, o *Object, protocol, route string, weights []int32) {
	var sum int64
	for _, w := range weights {
		sum += int64(w)
	}
	if sum != 0 && sum != 100 {
		c.report(RouteWeightsNot100, o, "", protocol, route, sum)
	}
}
