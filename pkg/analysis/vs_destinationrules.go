package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/virtualservice/destinationrules.go.
func init() {
	register(&Analyzer{
		Name:        "virtualservice.DestinationRuleAnalyzer",
		Description: "Checks the destination rules associated with each virtual service",
		Codes:       []string{"IST0101"},
		run:         analyzeVSDestinationRules,
	})
}

// hostSubset is a DestinationRule subset of a host ("ns/name").
type hostSubset struct{ host, subset string }

func analyzeVSDestinationRules(c *Context) {
	defined := map[hostSubset]bool{}
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr := o.Spec.(*networking.DestinationRule)
		for _, ss := range dr.GetSubsets() {
			defined[hostSubset{fullNameFromHost(o.Namespace, dr.GetHost()), ss.GetName()}] = true
		}
	}
	has := func(ns string, d *networking.Destination) bool {
		return d.GetSubset() == "" || defined[hostSubset{fullNameFromHost(ns, d.GetHost()), d.GetSubset()}]
	}
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		for _, d := range routeDestinations(vs) {
			if !has(o.Namespace, d.Destination) {
				c.report(ReferencedResourceNotFound, o, d.path(), "host+subset in destinationrule",
					fmt.Sprintf("%s+%s", d.Destination.GetHost(), d.Destination.GetSubset()))
			}
		}
		for _, d := range mirrorDestinations(vs) {
			if !has(o.Namespace, d.Destination) {
				c.report(ReferencedResourceNotFound, o, d.path(), "mirror+subset in destinationrule",
					fmt.Sprintf("%s+%s", d.Destination.GetHost(), d.Destination.GetSubset()))
			}
		}
	}
}
