package model

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// GatewayServer is one server of one Istio Gateway.
type GatewayServer struct {
	Gateway *config.Resource
	Spec    *networking.Server
	// Name is "namespace/gateway", the form VirtualService.gateways uses.
	Name string
	// Protocol is the server port's protocol, upper case.
	Protocol string
}

// IsHTTP reports whether the server speaks HTTP to the router (plain or
// after TLS termination).
func (s *GatewayServer) IsHTTP() bool {
	switch s.Protocol {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB":
		return true
	case "HTTPS":
		return s.Spec.GetTls().GetMode() != networking.ServerTLSSettings_PASSTHROUGH &&
			s.Spec.GetTls().GetMode() != networking.ServerTLSSettings_AUTO_PASSTHROUGH
	}
	return false
}

// TerminatesTLS reports whether the router terminates TLS for the server.
func (s *GatewayServer) TerminatesTLS() bool {
	return s.Protocol == "HTTPS" && s.IsHTTP() || s.Protocol == "TLS" && s.tlsTerminated()
}

// TLSTerminating reports whether the router terminates the server's TLS
// (SIMPLE, MUTUAL or ISTIO_MUTUAL).
func (s *GatewayServer) TLSTerminating() bool { return s.tlsTerminated() }

func (s *GatewayServer) tlsTerminated() bool {
	m := s.Spec.GetTls().GetMode()
	return m == networking.ServerTLSSettings_SIMPLE || m == networking.ServerTLSSettings_MUTUAL || m == networking.ServerTLSSettings_ISTIO_MUTUAL
}

// MergedGateway is every server a router proxy serves, by port, with the
// conflicts found while merging.
type MergedGateway struct {
	Ports     []uint32
	Servers   map[uint32][]*GatewayServer
	Conflicts []string
}

// GatewaysFor returns the Gateways whose selector matches labels, as
// Istio selects them: from every namespace, by key order.
func (pc *PushContext) GatewaysFor(labels map[string]string) []*config.Resource {
	var out []*config.Resource
	for _, g := range pc.Gateways() {
		sel := g.Spec.(*networking.Gateway).Selector
		if len(sel) == 0 || !registry.LabelsMatch(sel, labels) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// MergeGateways groups the servers of gateways by port. Servers on one port
// must agree on the protocol family: plain HTTP servers share one listener
// and route table, TLS-terminating servers on one port are told apart by
// SNI. A server that conflicts with an earlier one is dropped and reported,
// as Istio does.
func MergeGateways(gateways []*config.Resource) *MergedGateway {
	mg := &MergedGateway{Servers: map[uint32][]*GatewayServer{}}
	for _, g := range gateways {
		spec := g.Spec.(*networking.Gateway)
		for i, s := range spec.Servers {
			gs := &GatewayServer{Gateway: g, Spec: s, Name: g.Namespace + "/" + g.Name, Protocol: strings.ToUpper(s.GetPort().GetProtocol())}
			port := s.GetPort().GetNumber()
			if err := compatible(mg.Servers[port], gs); err != nil {
				mg.Conflicts = append(mg.Conflicts, fmt.Sprintf("Gateway %s server %d (port %d): %v; the server is ignored", gs.Name, i, port, err))
				continue
			}
			if _, seen := mg.Servers[port]; !seen {
				mg.Ports = append(mg.Ports, port)
			}
			mg.Servers[port] = append(mg.Servers[port], gs)
		}
	}
	sort.Slice(mg.Ports, func(i, j int) bool { return mg.Ports[i] < mg.Ports[j] })
	return mg
}

// Kind is how the router handles a server's connections: "http" (plain
// HTTP), "https" (TLS terminated, then HTTP), "tcp" (opaque, or TLS
// terminated then opaque) or "passthrough" (TLS routed by SNI, not
// terminated).
func (s *GatewayServer) Kind() string {
	switch {
	case s.IsHTTP() && !s.TerminatesTLS():
		return "http"
	case s.IsHTTP():
		return "https"
	case (s.Protocol == "TLS" || s.Protocol == "HTTPS") && !s.tlsTerminated():
		return "passthrough"
	}
	return "tcp"
}

func compatible(existing []*GatewayServer, s *GatewayServer) error {
	for _, e := range existing {
		if e.Kind() != s.Kind() && !(isTLSKind(e.Kind()) && isTLSKind(s.Kind())) {
			return fmt.Errorf("protocol %s conflicts with %s server of Gateway %s on the same port", s.Protocol, e.Protocol, e.Name)
		}
		if s.Kind() == "tcp" {
			return fmt.Errorf("a second TCP server on the port of Gateway %s's; TCP servers cannot be told apart", e.Name)
		}
		if s.Kind() != "http" && overlaps(e.Spec.Hosts, s.Spec.Hosts) {
			return fmt.Errorf("hosts %v overlap hosts %v of Gateway %s on the same TLS port", s.Spec.Hosts, e.Spec.Hosts, e.Name)
		}
	}
	return nil
}

// isTLSKind: TLS-terminating and passthrough servers share a port, told
// apart by SNI.
func isTLSKind(k string) bool { return k == "https" || k == "passthrough" }

func overlaps(a, b []string) bool {
	for _, x := range a {
		_, hx := SplitGatewayHost(x)
		for _, y := range b {
			_, hy := SplitGatewayHost(y)
			if hx == hy {
				return true
			}
		}
	}
	return false
}

// SplitGatewayHost splits a Gateway server host "ns/host" into its
// namespace part ("*" when absent) and host part.
func SplitGatewayHost(h string) (ns, host string) {
	if i := strings.IndexByte(h, '/'); i >= 0 {
		return h[:i], h[i+1:]
	}
	return "*", h
}

// GatewayHostAdmits reports whether a server host entry admits a
// VirtualService host from namespace vsNS, and returns the domain the
// pair serves: the more specific of the two (Istio's rule: "*" admits
// all, equal admits, a wildcard admits what it covers, a mismatch admits
// nothing).
func GatewayHostAdmits(entry, gatewayNS, vsNS, vsHost string) (string, bool) {
	ns, host := SplitGatewayHost(entry)
	switch ns {
	case "*":
	case ".":
		if vsNS != gatewayNS {
			return "", false
		}
	default:
		if vsNS != ns {
			return "", false
		}
	}
	return HostIntersection(host, vsHost)
}

// HostIntersection returns the more specific of two hosts when one
// covers the other, as Istio's Hostname.Matches decides it.
func HostIntersection(a, b string) (string, bool) {
	switch {
	case a == b:
		return a, true
	case config.HostMatches(a, b):
		return b, true
	case config.HostMatches(b, a):
		return a, true
	}
	return "", false
}
