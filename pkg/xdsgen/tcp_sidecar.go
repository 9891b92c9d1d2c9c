package xdsgen

import (
	"fmt"
	"sort"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// outboundTCP gives a sidecar one listener per TCP/TLS service port at its
// outbound TCP IP. A port whose Sidecar egress listener binds an address
// of its own is served there instead (boundEgress).
func (g *generation) outboundTCP() error {
	ip := g.proxy.OutboundTCPIP
	byPort := g.tcpServicesByPort()
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	for _, port := range ports {
		listenPort := port + uint32(g.proxy.PortOffset)
		if listenPort > 65535 || g.scope.EgressBind(port) != "" {
			continue
		}
		l, err := g.tcpPortListener(fmt.Sprintf("%s_%d", ip, port), ip, listenPort, port, byPort[port])
		if err != nil {
			return err
		}
		if l != nil {
			g.out.Listeners = append(g.out.Listeners, l)
		}
	}
	return nil
}

// tcpServicesByPort lists the visible services by the opaque ports the
// sidecar serves them on.
func (g *generation) tcpServicesByPort() map[uint32][]*registry.Service {
	byPort := map[uint32][]*registry.Service{}
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if g.outboundTCPPort(svc, p) {
				byPort[p.Number] = append(byPort[p.Number], svc)
			}
		}
	}
	return byPort
}

// tcpPortListener is the outbound TCP listener for service port at
// ip:listenPort, or nil when no service gives it a filter chain. TLS
// services on a port are told apart by SNI; one plain TCP service per port
// takes the connections that name no TLS service.
func (g *generation) tcpPortListener(name, ip string, listenPort, port uint32, svcs []*registry.Service) (*listener.Listener, error) {
	vsList := g.meshVirtualServices()
	mc := tcpMatchContext{port: port, gateway: model.GatewayMesh, destIP: ip}
	stat := fmt.Sprintf("outbound_tcp.%d", port)
	var chains []*listener.FilterChain
	var plain *registry.Service
	for _, svc := range svcs {
		p, _ := svc.Port(port)
		vs := g.portVirtualService(virtualServiceFor(vsList, svc.Hostname), svc.Hostname, port)
		if p.Protocol == registry.ProtocolTLS || p.Protocol == registry.ProtocolHTTPS {
			var sniChains []*listener.FilterChain
			if vs != nil {
				var err error
				if sniChains, err = g.tlsChains([]*model.VirtualService{vs}, mc, stat, nil); err != nil {
					return nil, err
				}
			}
			if len(sniChains) == 0 {
				als, err := g.accessLog(model.ListenerClassSidecarOutbound)
				if err != nil {
					return nil, err
				}
				c, err := tcpProxyChain(stat, tcpTarget{cluster: ClusterName("outbound", port, "", svc.Hostname)}, als)
				if err != nil {
					return nil, err
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
			g.out.OutboundTCPConflicts++
			continue
		}
		plain = svc
		target := tcpTarget{cluster: ClusterName("outbound", port, "", svc.Hostname)}
		if vs != nil {
			if t, ok := g.tcpRouteTarget([]*model.VirtualService{vs}, mc); ok {
				target = t
			}
		}
		als, err := g.accessLog(model.ListenerClassSidecarOutbound)
		if err != nil {
			return nil, err
		}
		c, err := tcpProxyChain(stat, target, als)
		if err != nil {
			return nil, err
		}
		chains = append(chains, c)
	}
	if len(chains) == 0 {
		return nil, nil
	}
	l := &listener.Listener{
		Name:             name,
		Address:          socketAddress(ip, listenPort),
		FilterChains:     chains,
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	}
	if needsTLSInspector(chains) {
		l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
	}
	return l, nil
}

// outboundTCPPort reports whether a service port gets an outbound TCP
// listener: the Sidecar's egress listener serving that port imports the
// service, and the port is opaque (by the egress listener's protocol when
// it names one, else the service port's). A port no egress listener
// covers gets no listener: with no original destination in local mode
// there is nothing to pass it through to, so the connection is refused.
func (g *generation) outboundTCPPort(svc *registry.Service, port registry.Port) bool {
	if !g.scope.ServicePortVisible(svc, port.Number) {
		return false
	}
	if p, ok := g.scope.PortProtocol(port.Number); ok {
		return !p.IsHTTP()
	}
	return !port.Protocol.IsHTTP()
}
