package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): subsets with no endpoint right now.
func init() {
	register(&Analyzer{
		Name:        "sluice.SubsetEndpointsAnalyzer",
		Description: "Checks that each DestinationRule subset selects at least one current endpoint of its host (WorkloadEntries, ServiceEntry endpoints, pods).",
		Codes:       []string{"SLU0004"},
		run:         analyzeSubsetEndpoints,
	})
}

// analyzeSubsetEndpoints reports a subset whose labels select none of the
// endpoints its host has now, as the registry the control plane pushes
// from sees them (a subset cluster is the service's endpoints filtered by
// the subset's labels). Hosts whose endpoints carry no labels (DNS
// names, the original destination, Services without selector), hosts
// with no endpoint at all (analysis input without workloads) and hosts no
// service declares (IST0174) are skipped; so are subsets without labels.
func analyzeSubsetEndpoints(c *Context) {
	for _, o := range c.Objects(config.KindDestinationRule) {
		dr := o.Spec.(*networking.DestinationRule)
		services := registryServices(c, o.Namespace, dr.GetHost())
		if len(services) == 0 {
			continue
		}
		var all []map[string]string
		for _, svc := range services {
			labels, known := endpointLabels(c, svc)
			if !known {
				all = nil
				services = nil
				break
			}
			all = append(all, labels...)
		}
		if services == nil || len(all) == 0 {
			continue // no endpoint at all: the host is down, not the subset wrong
		}
		for _, ss := range dr.GetSubsets() {
			if len(ss.GetLabels()) == 0 || anySelected(ss.GetLabels(), all) {
				continue
			}
			sel := selectorString(ss.GetLabels())
			c.report(SubsetSelectsNoEndpoint, o, "", ss.GetName(), sel, len(all), services[0].Hostname, sel)
		}
	}
}

func anySelected(selector map[string]string, labels []map[string]string) bool {
	for _, l := range labels {
		if selects(selector, l) {
			return true
		}
	}
	return false
}
