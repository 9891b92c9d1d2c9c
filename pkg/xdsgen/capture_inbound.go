package xdsgen

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// captureInbound builds a captured sidecar's virtualInbound listener
// (0.0.0.0:15006, Istio's buildInboundListeners with redirection): the
// chains of every inbound port, as local mode builds them per port
// (inbound.go: mTLS per PeerAuthentication mode, sniffing, RBAC), each
// matching its port as the connection's original destination port; then
// Istio's passthrough chains for ports the workload serves no service on
// (to InboundPassthroughCluster, the original destination) and the
// blackhole chain for connections addressed to 15006 itself. A Sidecar
// ingress listener with captureMode NONE keeps a bound listener of its own
// (Istio's inboundCustomListener).
func (g *generation) captureInbound() error {
	first := len(g.out.Listeners)
	if err := g.inbound(); err != nil {
		return err
	}
	perPort := append([]*listener.Listener(nil), g.out.Listeners[first:]...)
	g.out.Listeners = g.out.Listeners[:first]
	chains, err := g.inboundCatchAllChains()
	if err != nil {
		return err
	}
	var bound []*listener.Listener
	for _, l := range perPort {
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if g.boundInbound[port] {
			bound = append(bound, l)
			continue
		}
		for _, c := range l.FilterChains {
			m := proto.Clone(c.GetFilterChainMatch()).(*listener.FilterChainMatch)
			if m == nil {
				m = &listener.FilterChainMatch{}
			}
			m.DestinationPort = wrapperspb.UInt32(port)
			c.FilterChainMatch = m
			c.Name = captureListenerName("0.0.0.0", port)
			chains = append(chains, c)
		}
	}
	g.out.Listeners = append(g.out.Listeners, &listener.Listener{
		Name:             InboundListenerName,
		Address:          socketAddress("0.0.0.0", proxyInboundListenPort(g.push.Mesh)),
		TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters:  inboundListenerFilters(chains),
		// Istio: the mesh's protocolDetectionTimeout (default 0s: none),
		// continuing on timeout.
		ListenerFiltersTimeout:           detectionTimeout(g.push.Mesh),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     chains,
	})
	g.out.Listeners = append(g.out.Listeners, bound...)
	return nil
}

// inboundCatchAllChains are Istio's buildInboundPassthroughChains: the
// blackhole chain for the listener's own port, then tcp_proxy to
// InboundPassthroughCluster with the chains of the workload's
// PeerAuthentication mode (a STRICT workload's passthrough takes mTLS
// only). Istio also gives passthrough a sniffed HTTP chain; here
// passthrough traffic is proxied as TCP (network RBAC applies).
func (g *generation) inboundCatchAllChains() ([]*listener.FilterChain, error) {
	blackhole, err := tcpProxyChain(BlackHoleCluster, tcpTarget{cluster: BlackHoleCluster}, nil)
	if err != nil {
		return nil, err
	}
	blackhole.Name = inboundBlackholeChain
	blackhole.FilterChainMatch = &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(proxyInboundListenPort(g.push.Mesh))}
	als, err := g.accessLog(model.ListenerClassSidecarInbound)
	if err != nil {
		return nil, err
	}
	build := func() (*listener.FilterChain, error) {
		c, err := tcpProxyChain(InboundPassthroughCluster, tcpTarget{cluster: InboundPassthroughCluster}, als)
		if err != nil {
			return nil, err
		}
		c.Name = InboundListenerName
		return c, g.secureTCPChains(c)
	}
	mode := g.push.PeerAuthenticationFor(g.proxy.Namespace, g.proxy.Labels).Mode
	passthrough, err := g.inboundChains(mode, false, build)
	if err != nil {
		return nil, fmt.Errorf("inbound passthrough: %w", err)
	}
	return append([]*listener.FilterChain{blackhole}, passthrough...), nil
}

// inboundListenerFilters are Istio's populateListenerFilters for a listener
// that is not bound: original_dst, then the tls_inspector when a chain
// matches transport "tls", then the http_inspector when one matches
// "http/1.1" or "h2c".
func inboundListenerFilters(chains []*listener.FilterChain) []*listener.ListenerFilter {
	needTLS, needHTTP := false, false
	for _, c := range chains {
		m := c.GetFilterChainMatch()
		needTLS = needTLS || m.GetTransportProtocol() == TLSTransportProtocol
		for _, a := range m.GetApplicationProtocols() {
			needHTTP = needHTTP || a == "http/1.1" || a == "h2c"
		}
	}
	out := []*listener.ListenerFilter{originalDst()}
	if needTLS {
		out = append(out, tlsInspector())
	}
	if needHTTP {
		out = append(out, httpInspector())
	}
	return out
}

// capturedInboundPorts are a captured sidecar's workload ports when
// neither a Sidecar ingress listener nor --inbound-address names them:
// every port of an endpoint at one of the proxy's IPs (Istio's service
// targets, by target port). The app is reached as
// meshConfig.inboundTrafficPolicy says (Istio's buildInboundClusters):
// PASSTHROUGH (the default) at the connection's original destination, the
// workload's own address, from 127.0.0.6; LOCALHOST at 127.0.0.1:port.
func (g *generation) capturedInboundPorts() []inboundPort {
	ips := map[string]bool{}
	for _, ip := range g.proxy.IPs {
		ips[ip] = true
	}
	hosts := map[uint32]string{}
	seen := map[uint32]bool{}
	for _, svc := range g.push.Services() {
		for _, p := range svc.Ports {
			for _, ep := range g.push.Endpoints(svc, p.Number) {
				if ips[ep.Address] && !seen[ep.Port] {
					seen[ep.Port], hosts[ep.Port] = true, ep.Address
				}
			}
		}
	}
	local := g.push.Mesh.GetInboundTrafficPolicy().GetMode() == meshv1alpha1.MeshConfig_InboundTrafficPolicy_LOCALHOST
	var out []inboundPort
	for _, port := range sortedPorts(seen) {
		p := inboundPort{host: hosts[port], port: port}
		p.setProtocol(g.inboundProtocol(p.host, port))
		if local {
			p.appHost, p.appPort = "127.0.0.1", port
		} else {
			p.passthrough = true
		}
		out = append(out, p)
	}
	return out
}
