package xdsgen

import (
	"fmt"
	"net"
	"strconv"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// boundEgress adds a listener of its own for every Sidecar egress listener
// with a port and a bind address, at bind:port, as Istio binds an egress
// listener whose proxy does not intercept (buildSidecarOutboundListeners:
// bindToPort with the listener's bind IP). It serves the hosts that
// listener imports on that port: HTTP with a route table of that port
// alone (route name the port number, as Istio's), or TCP with the port's
// TCP/TLS services.
func (g *generation) boundEgress() error {
	var tcpByPort map[uint32][]*registry.Service
	for _, b := range g.scope.BoundEgress() {
		name := fmt.Sprintf("%s_%d", b.Bind, b.Port)
		if !g.boundEgressIsHTTP(b) {
			if tcpByPort == nil {
				tcpByPort = g.tcpServicesByPort()
			}
			l, err := g.tcpPortListener(name, b.Bind, b.Port, b.Port, tcpByPort[b.Port])
			if err != nil {
				return fmt.Errorf("egress listener %s: %w", name, err)
			}
			if l != nil && g.proxy.Captured() && !b.CaptureNone {
				l.BindToPort = wrapBool(false)
			}
			if l == nil {
				g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("Sidecar %s/%s egress listener %s: no TCP service on port %d is imported; not served",
					g.scope.Resource.Namespace, g.scope.Resource.Name, name, b.Port))
				continue
			}
			g.out.Listeners = append(g.out.Listeners, l)
			continue
		}
		routeName := strconv.FormatUint(uint64(b.Port), 10)
		als, err := g.accessLog(model.ListenerClassSidecarOutbound)
		if err != nil {
			return err
		}
		l, err := httpListener(listenerOptions{
			Name: name, Address: net.JoinHostPort(b.Bind, routeName),
			StatPrefix: "outbound_" + name, RouteName: routeName, Direction: core.TrafficDirection_OUTBOUND,
			Tracing: g.tracing(model.ListenerClassSidecarOutbound), Mesh: g.push.Mesh, AccessLog: als,
		})
		if err != nil {
			return fmt.Errorf("egress listener %s: %w", name, err)
		}
		if g.proxy.Captured() && !b.CaptureNone {
			// Istio: with capture, an egress listener binds no socket
			// unless its captureMode is NONE; connections captured to
			// bind:port are handed to it.
			l.BindToPort = wrapBool(false)
		}
		rc, err := g.sharedRouteTable(routeName, b.Port)
		if err != nil {
			return fmt.Errorf("egress listener %s: %w", name, err)
		}
		g.out.Listeners = append(g.out.Listeners, l)
		g.addSharedRoute(rc)
	}
	return nil
}

// boundEgressIsHTTP: the listener port's protocol when it names one, else
// HTTP unless every imported service port on it is opaque (with none, HTTP:
// its route table still answers by the outbound traffic policy).
func (g *generation) boundEgressIsHTTP(b model.BoundEgress) bool {
	if b.Protocol != "" {
		return b.Protocol.IsHTTP()
	}
	opaque := false
	for _, svc := range g.push.Services() {
		p, ok := svc.Port(b.Port)
		if !ok || !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServicePortVisible(svc, b.Port) {
			continue
		}
		if p.Protocol.IsHTTP() {
			return true
		}
		opaque = true
	}
	return !opaque
}
