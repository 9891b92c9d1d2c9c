package analysis

import (
	"fmt"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/virtualservice/destinationhosts.go.
func init() {
	register(&Analyzer{
		Name:        "virtualservice.DestinationHostAnalyzer",
		Description: "Checks the destination hosts associated with each virtual service",
		Codes:       []string{"IST0101", "IST0112", "IST0140"},
		run:         analyzeDestinationHosts,
	})
}

func analyzeDestinationHosts(c *Context) {
	hosts := serviceEntryHosts(c.Snapshot)
	subsetDests := vsSubsetDestinations(c)
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		for _, d := range routeDestinations(vs) {
			se := destinationHost(o.Namespace, vs.ExportTo, d.Destination.GetHost(), hosts)
			if se == nil {
				c.report(ReferencedResourceNotFound, o, d.path(), "host", d.Destination.GetHost())
				continue
			}
			checkServiceEntryPorts(c, o, d, se)
		}
		for _, d := range mirrorDestinations(vs) {
			se := destinationHost(o.Namespace, vs.ExportTo, d.Destination.GetHost(), hosts)
			if se == nil {
				c.report(ReferencedResourceNotFound, o, d.path(), "mirror host", d.Destination.GetHost())
				continue
			}
			checkServiceEntryPorts(c, o, d, se)
		}
		ingressSubsets(c, o, subsetDests)
	}
}

// checkServiceEntryPorts reports a destination without a port to a
// service of several ports, or with a port the service lacks.
func checkServiceEntryPorts(c *Context, o *Object, d annotatedDestination, se *networking.ServiceEntry) {
	if d.Destination.GetPort() == nil {
		if len(se.GetPorts()) > 1 {
			var ports []int
			for _, p := range se.GetPorts() {
				ports = append(ports, int(p.GetNumber()))
			}
			c.report(VirtualServiceDestinationPortSelectorRequired, o, d.path(), d.Destination.GetHost(), ports)
		}
		return
	}
	for _, p := range se.GetPorts() {
		if d.Destination.GetPort().GetNumber() == p.GetNumber() {
			return
		}
	}
	c.report(ReferencedResourceNotFound, o, d.path(), "host:port",
		fmt.Sprintf("%s:%d", d.Destination.GetHost(), d.Destination.GetPort().GetNumber()))
}

// vsSubsetDestinations maps each VirtualService to its http destinations
// that name a subset of one of its own hosts (initVirtualServiceDestinations).
func vsSubsetDestinations(c *Context) map[*Object][]*networking.Destination {
	out := map[*Object][]*networking.Destination{}
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		for _, r := range vs.GetHttp() {
			for _, rd := range r.GetRoute() {
				d := rd.GetDestination()
				if d.GetSubset() == "" {
					continue
				}
				for _, h := range vs.GetHosts() {
					if d.GetHost() == h {
						out[o] = append(out[o], d)
					}
				}
			}
		}
	}
	return out
}

// ingressSubsets reports, for a gateway-bound VirtualService routing to a
// host without a subset, each VirtualService whose subset routing for that
// host the gateway's requests will not get (analyzeSubset).
func ingressSubsets(c *Context, o *Object, subsetDests map[*Object][]*networking.Destination) {
	vs := o.Spec.(*networking.VirtualService)
	if len(vs.GetGateways()) == 0 {
		return
	}
	for i, h := range vs.GetHttp() {
		for j, rd := range h.GetRoute() {
			if rd.GetDestination().GetSubset() != "" {
				continue
			}
			for other, dests := range subsetDests {
				for _, d := range dests {
					if d.GetHost() == rd.GetDestination().GetHost() {
						c.report(IngressRouteRulesNotAffected, o, sprintf(pathDestinationHost, h.Name, i, j), other.FullName(), o.FullName())
					}
				}
			}
		}
	}
}
