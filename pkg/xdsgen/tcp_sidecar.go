package xdsgen

import (
	"fmt"
	"sort"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// outboundTCP gives a sidecar one listener per TCP/TLS service port at its
// outbound TCP IP. TLS services on a port are told apart by SNI; one plain
// TCP service per port takes the connections that name no TLS service.
func (g *generation) outboundTCP() error {
	ip := g.proxy.OutboundTCPIP
	vsList := g.meshVirtualServices()
	byPort := map[uint32][]*registry.Service{}
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if !p.Protocol.IsHTTP() {
				byPort[p.Number] = append(byPort[p.Number], svc)
			}
		}
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, port := range ports {
		listenPort := port + uint32(g.proxy.PortOffset)
		if listenPort > 65535 {
			continue
		}
		mc := tcpMatchContext{port: port, gateway: model.GatewayMesh, destIP: ip}
		stat := fmt.Sprintf("outbound_tcp.%d", port)
		var chains []*listener.FilterChain
		var plain *registry.Service
		for _, svc := range byPort[port] {
			p, _ := svc.Port(port)
			vs := virtualServiceFor(vsList, svc.Hostname)
			if p.Protocol == registry.ProtocolTLS || p.Protocol == registry.ProtocolHTTPS {
				var sniChains []*listener.FilterChain
				if vs != nil {
					var err error
					if sniChains, err = g.tlsChains([]*model.VirtualService{vs}, mc, stat, nil); err != nil {
						return err
					}
				}
				if len(sniChains) == 0 {
					c, err := tcpProxyChain(stat, tcpTarget{cluster: ClusterName("outbound", port, "", svc.Hostname)})
					if err != nil {
						return err
					}
					c.FilterChainMatch = &listener.FilterChainMatch{ServerNames: []string{svc.Hostname}}
					sniChains = []*listener.FilterChain{c}
				}
				chains = append(chains, sniChains...)
				continue
			}
			if plain != nil {
				g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("outbound TCP port %d: %s and %s both use it; without VIPs only %s is reachable",
					port, plain.Hostname, svc.Hostname, plain.Hostname))
				continue
			}
			plain = svc
			target := tcpTarget{cluster: ClusterName("outbound", port, "", svc.Hostname)}
			if vs != nil {
				if t, ok := g.tcpRouteTarget([]*model.VirtualService{vs}, mc); ok {
					target = t
				}
			}
			c, err := tcpProxyChain(stat, target)
			if err != nil {
				return err
			}
			chains = append(chains, c)
		}
		if len(chains) == 0 {
			continue
		}
		l := &listener.Listener{
			Name:             fmt.Sprintf("%s_%d", ip, port),
			Address:          socketAddress(ip, listenPort),
			FilterChains:     chains,
			TrafficDirection: core.TrafficDirection_OUTBOUND,
		}
		if needsTLSInspector(chains) {
			l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
		}
		g.out.Listeners = append(g.out.Listeners, l)
	}
	return nil
}

// inboundIsTCP reports whether every service port this sidecar's workload
// serves is opaque TCP: then its inbound listener proxies TCP, not HTTP.
// The workload is found by its endpoints pointing at the inbound address.
func (g *generation) inboundIsTCP() bool {
	host, port, err := hostport.ParseAddr(g.proxy.InboundAddress)
	if err != nil {
		return false
	}
	found := false
	for _, svc := range g.push.Services() {
		for _, p := range svc.Ports {
			for _, ep := range g.push.Endpoints(svc, p.Number) {
				if ep.Port != port || (ep.Address != host && !(host == "0.0.0.0" || host == "::")) {
					continue
				}
				if p.Protocol.IsHTTP() {
					return false
				}
				found = true
			}
		}
	}
	return found
}
