package xdsgen

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// router generates a gateway proxy's config: the outbound clusters, and a
// listener per port of the Gateways that select it. Plain HTTP servers on
// a port share one filter chain and route table; each TLS-terminating
// server gets its own chain, matched by SNI, and route table.
func (g *generation) router() error {
	if err := g.sharedClusters(); err != nil {
		return err
	}
	mg := model.MergeGateways(g.push.GatewaysForProxy(g.proxy.Labels, g.proxy.Namespace))
	g.out.Conflicts = append(g.out.Conflicts, mg.Conflicts...)
	for _, port := range mg.Ports {
		l, err := g.gatewayListener(port, mg.Servers[port])
		if err != nil {
			return err
		}
		if l != nil {
			g.out.Listeners = append(g.out.Listeners, l)
		}
	}
	return nil
}

func (g *generation) gatewayListener(port uint32, servers []*model.GatewayServer) (*listener.Listener, error) {
	bind := g.proxy.BindAddress
	if bind == "" {
		bind = "0.0.0.0"
	}
	listenPort := port + uint32(g.proxy.PortOffset)
	if listenPort > 65535 {
		g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("port %d + offset %d is beyond 65535; not served", port, g.proxy.PortOffset))
		return nil, nil
	}
	name := fmt.Sprintf("0.0.0.0_%d", port)
	addr := fmt.Sprintf("%s:%d", bind, listenPort)
	var chains []*listener.FilterChain
	var plain []*model.GatewayServer
	sec, err := g.securityHTTPFilters()
	if err != nil {
		return nil, err
	}
	als, err := g.accessLog(model.ListenerClassGateway)
	if err != nil {
		return nil, err
	}
	for _, s := range servers {
		switch {
		case s.IsHTTP() && !s.TerminatesTLS():
			plain = append(plain, s)
		case s.TerminatesTLS() && s.IsHTTP():
			routeName := fmt.Sprintf("https.%d.%s.%s.%s", port, s.Spec.GetPort().GetName(), s.Gateway.Name, s.Gateway.Namespace)
			tls, err := g.downstreamTLS(s)
			if err != nil {
				g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("Gateway %s port %d: %v; the server is not served", s.Name, port, err))
				continue
			}
			chain, err := httpFilterChain(listenerOptions{Name: name, Address: addr, StatPrefix: routeName, RouteName: routeName,
				Direction: core.TrafficDirection_OUTBOUND, StripPort: true, Tracing: g.tracing(model.ListenerClassGateway), Mesh: g.push.Mesh, XFCC: xfccGateway, SecurityFilters: sec,
				AccessLog: als})
			if err != nil {
				return nil, err
			}
			chain.FilterChainMatch = &listener.FilterChainMatch{ServerNames: sniNames(s.Spec.Hosts)}
			chain.TransportSocket = tls
			chains = append(chains, chain)
			g.out.Routes = append(g.out.Routes, g.gatewayRoutes(routeName, port, []*model.GatewayServer{s}))
		default:
			l4, err := g.gatewayL4Chains(port, s)
			if err != nil {
				return nil, err
			}
			if err := g.secureTCPChains(l4...); err != nil {
				return nil, err
			}
			chains = append(chains, l4...)
		}
	}
	if len(plain) > 0 {
		routeName := fmt.Sprintf("http.%d", port)
		chain, err := httpFilterChain(listenerOptions{Name: name, Address: addr, StatPrefix: routeName, RouteName: routeName,
			Direction: core.TrafficDirection_OUTBOUND, StripPort: true, Tracing: g.tracing(model.ListenerClassGateway), Mesh: g.push.Mesh, XFCC: xfccGateway, SecurityFilters: sec,
			AccessLog: als})
		if err != nil {
			return nil, err
		}
		chains = append(chains, chain)
		g.out.Routes = append(g.out.Routes, g.gatewayRoutes(routeName, port, plain))
	}
	if len(chains) == 0 {
		return nil, nil
	}
	host, lport, err := hostport.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	l := &listener.Listener{Name: name, Address: socketAddress(host, lport), FilterChains: chains,
		TrafficDirection: core.TrafficDirection_OUTBOUND}
	if needsTLSInspector(chains) {
		l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
	}
	return l, nil
}

// sniNames are the server names a TLS chain matches: the server's hosts
// without namespace prefixes; "*" matches every name (no SNI condition).
func sniNames(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		_, host := model.SplitGatewayHost(h)
		if host == "*" {
			return nil
		}
		out = append(out, host)
	}
	sort.Strings(out)
	return dedupe(out)
}

// gatewayRoutes builds the route table of one or more servers on a port:
// a virtual host per domain admitted by both a server host and a
// VirtualService host, with the routes of every VirtualService bound to
// that server's Gateway for that domain, in VirtualService order.
func (g *generation) gatewayRoutes(name string, port uint32, servers []*model.GatewayServer) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: name, ValidateClusters: wrapBool(false)}
	vhosts := map[string]*route.VirtualHost{}
	var order []string
	redirect := map[string]bool{}
	for _, s := range servers {
		for _, vs := range g.push.VirtualServicesFor(s.Name, s.Gateway.Namespace) {
			for _, domain := range admittedDomains(s, vs) {
				vh := vhosts[domain]
				if vh == nil {
					vh = &route.VirtualHost{Name: fmt.Sprintf("%s:%d", domain, port), Domains: []string{domain}}
					vhosts[domain] = vh
					order = append(order, domain)
				}
				vh.Routes = append(vh.Routes, g.virtualServiceRoutes(vs, routeContext{port: port, gateway: s.Name})...)
				if s.Spec.GetTls().GetHttpsRedirect() {
					redirect[domain] = true
				}
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return domainOrder(order[i]) < domainOrder(order[j]) })
	for _, d := range order {
		vh := vhosts[d]
		if redirect[d] {
			vh.RequireTls = route.VirtualHost_ALL
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

// admittedDomains lists the domains server s serves for vs.
func admittedDomains(s *model.GatewayServer, vs *model.VirtualService) []string {
	var out []string
	for _, entry := range s.Spec.Hosts {
		for _, h := range vs.Spec.Hosts {
			if d, ok := model.GatewayHostAdmits(entry, s.Gateway.Namespace, vs.Namespace, h); ok {
				out = append(out, strings.ToLower(d))
			}
		}
	}
	sort.Strings(out)
	return dedupe(out)
}

// domainOrder sorts exact domains before wildcards so output is stable.
func domainOrder(d string) string {
	if strings.HasPrefix(d, "*") {
		return "1" + d
	}
	return "0" + d
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// needsTLSInspector: chains told apart by SNI need the ClientHello read
// before one is chosen.
func needsTLSInspector(chains []*listener.FilterChain) bool {
	for _, c := range chains {
		if c.TransportSocket != nil || len(c.GetFilterChainMatch().GetServerNames()) > 0 {
			return true
		}
	}
	return false
}
