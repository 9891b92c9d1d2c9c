package analysis

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/virtualservice/conflictingmeshgatewayhosts.go.
func init() {
	register(&Analyzer{
		Name:        "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
		Description: "Checks if multiple virtual services associated with the mesh gateway have conflicting hosts",
		Codes:       []string{"IST0109"},
		run:         analyzeConflictingMeshGatewayHosts,
	})
}

func analyzeConflictingMeshGatewayHosts(c *Context) {
	hosts := meshGatewayHosts(c)
	reported := map[*Object]bool{}
	for _, key := range sortedScopedKeys(hosts) {
		list := hosts[key]
		if scope, _ := key.scopeAndFqdn(); scope != exportToAllNamespaces {
			list = append(append([]*Object(nil), list...), exportedToAllFor(key, hosts)...)
		}
		if len(list) < 2 {
			continue
		}
		var names []string
		for _, o := range list {
			names = append(names, o.FullName())
		}
		sort.Strings(names)
		for _, o := range list {
			if reported[o] {
				continue
			}
			reported[o] = true
			c.report(ConflictingMeshGatewayVirtualServiceHosts, o, pathMetadataName, strings.Join(names, ","), string(key))
		}
	}
}

// exportedToAllFor lists the VirtualServices exported to all namespaces
// whose host matches key's (getExportToAllNamespacesVSListForScopedHost).
func exportedToAllFor(key scopedFqdn, hosts map[scopedFqdn][]*Object) []*Object {
	_, h := key.scopeAndFqdn()
	var out []*Object
	for _, other := range sortedScopedKeys(hosts) {
		scope, oh := other.scopeAndFqdn()
		if scope == exportToAllNamespaces && hostMatches(h, oh) {
			out = append(out, hosts[other]...)
		}
	}
	return out
}

// meshGatewayHosts indexes the VirtualServices bound to the mesh gateway
// by each scoped host (initMeshGatewayHosts).
func meshGatewayHosts(c *Context) map[scopedFqdn][]*Object {
	out := map[scopedFqdn][]*Object{}
	for _, o := range c.Objects(config.KindVirtualService) {
		vs := o.Spec.(*networking.VirtualService)
		if len(vs.Gateways) > 0 && !contains(vs.Gateways, meshGateway) {
			continue
		}
		scopes := []string{exportToAllNamespaces}
		if !isExportToAll(vs.ExportTo) {
			seen := map[string]bool{}
			scopes = nil
			for _, e := range vs.ExportTo {
				if e == exportToNamespaceLocal {
					e = o.Namespace
				}
				if !seen[e] {
					seen[e] = true
					scopes = append(scopes, e)
				}
			}
		}
		for _, scope := range scopes {
			for _, h := range vs.Hosts {
				key := newScopedFqdn(scope, o.Namespace, h)
				out[key] = append(out[key], o)
			}
		}
	}
	return out
}

// sortedScopedKeys orders map keys so reports do not depend on map order.
func sortedScopedKeys[V any](m map[scopedFqdn]V) []scopedFqdn {
	keys := make([]scopedFqdn, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
