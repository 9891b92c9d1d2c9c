package xdsgen

import (
	"fmt"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// outboundRoutes builds the sidecar's outbound route table: one virtual
// host per (service, HTTP port), routed by the VirtualService bound to
// "mesh" for that host, then a catch-all for unknown hosts.
func (g *generation) outboundRoutes() (*route.RouteConfiguration, error) {
	return g.sharedRouteTable(OutboundRouteName, 0)
}

// outboundRouteTable is the outbound route table named name, for every
// port, or for onlyPort alone (a bound egress listener's: a host without
// a port then means that port).
func (g *generation) outboundRouteTable(name string, onlyPort uint32) *route.RouteConfiguration {
	vsList := g.meshVirtualServices()
	rc := &route.RouteConfiguration{Name: name, ValidateClusters: wrapBool(false)}
	used := map[string]bool{}
	claimed := map[*model.VirtualService]bool{}
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) {
			continue
		}
		vs := virtualServiceFor(vsList, svc.Hostname)
		if vs != nil {
			claimed[vs] = true
		}
		defPort := defaultPort(svc)
		for _, port := range svc.Ports {
			if onlyPort == 0 && g.outboundTCPPort(svc, port) {
				// CONNECT to an opaque port (connect.go); bound egress
				// listeners' tables take no CONNECT.
				rc.VirtualHosts = append(rc.VirtualHosts, g.connectVirtualHosts(used, svc, port, vsList)...)
				continue
			}
			if !g.outboundHTTPPort(svc, port) || (onlyPort != 0 && port.Number != onlyPort) {
				continue
			}
			vs := g.portVirtualService(vs, svc.Hostname, port.Number)
			vh := &route.VirtualHost{
				Name:    fmt.Sprintf("%s:%d", svc.Hostname, port.Number),
				Domains: claimDomains(used, hostAliases(svc.Hostname, g.proxy.Namespace, svc.Addresses), port.Number, port.Number == defPort || onlyPort != 0),
				// Istio's proxy headers: x-envoy-attempt-count upstream.
				IncludeRequestAttemptCount: g.includeAttemptCount(),
			}
			if len(vh.Domains) == 0 {
				continue
			}
			if vs != nil {
				vh.Routes = g.virtualServiceRoutes(vs, routeContext{port: port.Number, service: svc})
			}
			// No route of the VirtualService applies on this port (its
			// matches name other ports): Istio then serves the port as if
			// there were no VirtualService.
			if len(vh.Routes) == 0 {
				r := defaultRoute(ClusterName("outbound", port.Number, "", svc.Hostname))
				// Istio's default route names the service in its decorator.
				r.Decorator = &route.Decorator{Operation: traceOperation(svc.Hostname, port.Number, "/*")}
				vh.Routes = []*route.Route{g.withDefaultRetry(g.withServiceHash(r, svc, port.Number))}
			}
			if onlyPort == 0 {
				// CONNECT to an HTTP port: served as HTTP by this table
				// (connect.go). Last: only CONNECT requests match it, and
				// no other route matches those.
				vh.Routes = append(vh.Routes, connectRoute("connect:"+vh.Name, tcpTarget{cluster: ConnectHTTPCluster}))
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	rc.VirtualHosts = append(rc.VirtualHosts, g.unclaimedVirtualServiceHosts(vsList, claimed, used, onlyPort)...)
	rc.VirtualHosts = append(rc.VirtualHosts, g.catchAllHost(onlyPort == 0))
	return rc
}

// unclaimedVirtualServiceHosts gives VirtualService hosts that name no
// service their routes, on port 80 as Istio does for sidecars.
func (g *generation) unclaimedVirtualServiceHosts(vsList []*model.VirtualService, claimed map[*model.VirtualService]bool, used map[string]bool, onlyPort uint32) []*route.VirtualHost {
	var out []*route.VirtualHost
	for _, vs := range vsList {
		if claimed[vs] {
			continue
		}
		if !g.scope.VirtualServicePortVisible(vs, 80) || (onlyPort != 0 && onlyPort != 80) {
			continue
		}
		for _, h := range vs.Hosts {
			if len(g.push.ServicesForHost(h)) > 0 {
				continue
			}
			domains := claimDomains(used, []string{h}, 80, true)
			if len(domains) == 0 {
				continue
			}
			vh := &route.VirtualHost{
				Name: fmt.Sprintf("%s:80", h), Domains: domains,
				Routes:                     g.virtualServiceRoutes(vs, routeContext{port: 80}),
				IncludeRequestAttemptCount: g.includeAttemptCount(),
			}
			if onlyPort == 0 {
				vh.Routes = append(vh.Routes, connectRoute("connect:"+vh.Name, tcpTarget{cluster: ConnectHTTPCluster}))
			}
			out = append(out, vh)
		}
	}
	return out
}

// outboundHTTPPort reports whether a service port gets a virtual host in
// the outbound route table: the Sidecar's egress listener serving that
// port imports the service, and the port carries HTTP (by the egress
// listener's protocol when it names one, else the service port's).
func (g *generation) outboundHTTPPort(svc *registry.Service, port registry.Port) bool {
	if !g.scope.ServicePortVisible(svc, port.Number) {
		return false
	}
	if p, ok := g.scope.PortProtocol(port.Number); ok {
		return p.IsHTTP()
	}
	return port.Protocol.IsHTTP()
}

// portVirtualService is the VirtualService for host on port: vs when the
// egress listener serving the port imports it, else the best one that
// listener imports (Istio routes port P by the VirtualServices of P's
// egress listener, GetEgressListenerForRDS).
func (g *generation) portVirtualService(vs *model.VirtualService, host string, port uint32) *model.VirtualService {
	if vs == nil || g.scope.VirtualServicePortVisible(vs, port) {
		return vs
	}
	var list []*model.VirtualService
	for _, v := range g.meshVirtualServices() {
		if g.scope.VirtualServicePortVisible(v, port) {
			list = append(list, v)
		}
	}
	return virtualServiceFor(list, host)
}

// catchAllHost answers hosts the mesh does not know, by the mesh's
// outbound traffic policy: ALLOW_ANY passes them through, REGISTRY_ONLY
// answers 502 as Istio's block_all virtual host does.
// With connect, CONNECT requests to unknown hosts are handled the same way
// (catchAllConnect).
func (g *generation) catchAllHost(connect bool) *route.VirtualHost {
	// REGISTRY_ONLY is the proto's zero value, so only an explicit policy
	// counts; an unset one is Istio's default, ALLOW_ANY.
	var vh *route.VirtualHost
	allow := true
	if p := g.scope.OutboundTrafficPolicy(g.push.Mesh); p != nil && p.Mode == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		allow = false
		vh = &route.VirtualHost{Name: "block_all", Domains: []string{"*"}, IncludeRequestAttemptCount: g.includeAttemptCount(), Routes: []*route.Route{{
			Name:   "block_all",
			Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
		}}}
	} else {
		r := defaultRoute(PassthroughCluster)
		r.Name = "allow_any"
		vh = &route.VirtualHost{Name: "allow_any", Domains: []string{"*"}, Routes: []*route.Route{r}, IncludeRequestAttemptCount: g.includeAttemptCount()}
	}
	if connect {
		vh.Routes = append([]*route.Route{catchAllConnect(allow)}, vh.Routes...)
	}
	return vh
}

// virtualServiceFor picks the VirtualService for host: an exact host beats
// a wildcard, the longest wildcard wins, and among equals the first in
// order (Istio's oldest) wins.
func virtualServiceFor(list []*model.VirtualService, host string) *model.VirtualService {
	var best *model.VirtualService
	bestHost := ""
	for _, vs := range list {
		for _, h := range vs.Hosts {
			if !config.HostMatches(h, host) {
				continue
			}
			if best == nil || betterHost(h, bestHost) {
				best, bestHost = vs, h
			}
		}
	}
	return best
}

func betterHost(a, b string) bool {
	if a == b {
		return false
	}
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return !aw
	}
	return len(a) > len(b)
}

// defaultPort is the port a bare host (no ":port") goes to: the only HTTP
// port, else port 80, else the first HTTP port.
func defaultPort(svc *registry.Service) uint32 {
	var first uint32
	for _, p := range svc.Ports {
		if !p.Protocol.IsHTTP() {
			continue
		}
		if p.Number == 80 {
			return 80
		}
		if first == 0 {
			first = p.Number
		}
	}
	return first
}

// hostAliases lists the names a client may use for host: for Kubernetes
// hosts name.ns.svc.cluster.local also name.ns.svc and name.ns, and name
// alone from the same namespace; plus the service's addresses.
func hostAliases(host, proxyNS string, addresses []string) []string {
	out := []string{host}
	if base, ok := strings.CutSuffix(host, ".svc."+meshconfig.DefaultClusterLocalDomain); ok {
		out = append(out, base+".svc", base)
		if name, ns, ok := strings.Cut(base, "."); ok && ns == proxyNS {
			out = append(out, name)
		}
	}
	return append(out, addresses...)
}

// claimDomains returns the domains for names on port (and bare names too
// when withBare), skipping any an earlier virtual host already claimed:
// Envoy rejects a route table with one domain twice.
func claimDomains(used map[string]bool, names []string, port uint32, withBare bool) []string {
	var out []string
	add := func(d string) {
		if !used[d] {
			used[d] = true
			out = append(out, d)
		}
	}
	for _, n := range names {
		if withBare {
			add(n)
		}
		add(fmt.Sprintf("%s:%d", n, port))
	}
	return out
}

func defaultRoute(clusterName string) *route.Route {
	return &route.Route{
		Name:  "default",
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
			Timeout:          zeroDuration(),
		}},
	}
}

// meshVirtualServices are the VirtualServices bound to sidecars that this
// sidecar sees: exported to its namespace and admitted by its Sidecar.
func (g *generation) meshVirtualServices() []*model.VirtualService {
	all := g.push.VirtualServicesFor(model.GatewayMesh, g.proxy.Namespace)
	if g.scope == nil || g.scope.Resource == nil {
		return all
	}
	out := make([]*model.VirtualService, 0, len(all))
	for _, vs := range all {
		if g.scope.VirtualServiceVisible(vs) {
			out = append(out, vs)
		}
	}
	return out
}
