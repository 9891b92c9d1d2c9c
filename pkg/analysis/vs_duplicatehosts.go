package analysis

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): one host on one gateway in several
// VirtualServices.
func init() {
	register(&Analyzer{
		Name:        "sluice.DuplicateGatewayHostAnalyzer",
		Description: "Checks for a host bound to one gateway by several VirtualServices, whose routes Istio merges in an undefined order.",
		Codes:       []string{"SLU0002"},
		run:         analyzeDuplicateGatewayHosts,
	})
}

// analyzeDuplicateGatewayHosts groups VirtualServices by (gateway, host)
// and reports each group of two or more. The mesh gateway is left to
// IST0109 (ConflictingMeshGatewayVirtualServiceHosts); hosts are compared
// exactly after short names are qualified, so overlapping wildcards are
// not reported. A VirtualService not exported to the gateway's namespace
// is not bound to it, nor is a host no server of the Gateway admits.
func analyzeDuplicateGatewayHosts(c *Context) {
	type key struct{ gateway, host string }
	groups := map[key][]*Object{}
	var order []key
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		seen := map[key]bool{}
		for _, g := range vs.GetGateways() {
			if g == "mesh" {
				continue
			}
			ns, name := shortOrFullName(o.Namespace, g)
			if !exportedTo(vs.GetExportTo(), o.Namespace, ns) {
				continue // the gateway does not see it
			}
			gwObj := c.Find(config.KindGateway, ns, name)
			for _, h := range vs.GetHosts() {
				if gwObj == nil || !gatewayAdmits(gwObj, o.Namespace, convertHostToFQDN(o.Namespace, h)) {
					continue // not bound: IST0101 or IST0132 says so
				}
				gw := name
				if ns != "" {
					gw = ns + "/" + name
				}
				k := key{gw, convertHostToFQDN(o.Namespace, h)}
				if seen[k] {
					continue
				}
				seen[k] = true
				if groups[k] == nil {
					order = append(order, k)
				}
				groups[k] = append(groups[k], o)
			}
		}
	}
	for _, k := range order {
		list := groups[k]
		if len(list) < 2 {
			continue
		}
		names := make([]string, 0, len(list))
		for _, o := range list {
			names = append(names, o.FullName())
		}
		sort.Strings(names)
		for _, o := range list {
			c.report(DuplicateGatewayVirtualServiceHost, o, pathMetadataName, strings.Join(names, ","), k.host, k.gateway)
		}
	}
}

// exportedTo reports whether a VirtualService of namespace own, exported
// to exportTo, is visible in namespace ns (empty or "*": everywhere; "."
// its own namespace).
func exportedTo(exportTo []string, own, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == ns || e == "." && own == ns {
			return true
		}
	}
	return false
}

// gatewayAdmits reports whether a server of Gateway gw takes host from a
// VirtualService of namespace ns: a server host "[ns/]dnsName" whose
// namespace is "*" (or absent), ns, or "." with ns the Gateway's own, and
// whose dnsName matches host.
func gatewayAdmits(gw *Object, ns, host string) bool {
	for _, srv := range gw.Spec.(*networking.Gateway).GetServers() {
		for _, sh := range srv.GetHosts() {
			hns, name, ok := strings.Cut(sh, "/")
			if !ok {
				hns, name = "*", sh
			}
			if (hns == "*" || hns == ns || hns == "." && ns == gw.Namespace) && hostMatches(name, host) {
				return true
			}
		}
	}
	return false
}
