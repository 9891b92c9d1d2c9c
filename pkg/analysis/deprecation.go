package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/deprecation/deprecation.go.
// Its CustomResourceDefinition check (the removed rbac.istio.io kinds)
// does not apply: sluice reads no CRDs.
func init() {
	register(&Analyzer{
		Name:        "deprecation.DeprecationAnalyzer",
		Aliases:     []string{"deprecation.FieldAnalyzer"},
		Description: "Checks for deprecated Istio types and fields",
		Codes:       []string{"IST0002"},
		run:         analyzeDeprecations,
	})
}

func analyzeDeprecations(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		for _, r := range o.Spec.(*networking.VirtualService).Http {
			if r.GetFault().GetDelay().GetPercent() > 0 {
				c.report(Deprecated, o, "", "HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage")
			}
		}
	}
	for _, o := range c.Objects(config.KindSidecar) {
		if o.Spec.(*networking.Sidecar).GetOutboundTrafficPolicy().GetEgressProxy() != nil {
			c.report(Deprecated, o, "", "OutboundTrafficPolicy.EgressProxy ignored")
		}
	}
}
