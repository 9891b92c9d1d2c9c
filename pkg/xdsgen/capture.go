package xdsgen

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	origdst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Capture mode (the proxy's INTERCEPTION_MODE REDIRECT): Istio's sidecar
// listener layout (pilot/pkg/networking/core/listener.go
// buildSidecarOutboundListeners, listener_builder.go
// buildVirtualOutboundListener, listener_inbound.go buildInboundListeners).
// iptables sends the app's outbound connections to virtualOutbound
// (0.0.0.0:15001, use_original_dst), which hands each to the listener
// matching its original destination: VIP_P for a TCP service with an
// address, else 0.0.0.0_P (HTTP ports, TCP services without an address),
// none of them bound (bind_to_port false); a connection no listener takes
// stays on virtualOutbound and passes through (ALLOW_ANY) or is dropped
// (REGISTRY_ONLY). Inbound connections go to virtualInbound
// (0.0.0.0:15006), whose filter chains match the original destination
// port (capture_inbound.go).

// Names of Istio's capture-mode listeners, filter chains and clusters
// (pilot/pkg/model/listener.go, pilot/pkg/networking/util/util.go).
const (
	OriginalDstFilter         = "envoy.filters.listener.original_dst"
	InboundPassthroughCluster = "InboundPassthroughCluster"
	PassthroughFilterChain    = "PassthroughFilterChain"
	outboundCatchAllChain     = "virtualOutbound-catchall-tcp"
	outboundBlackholeChain    = "virtualOutbound-blackhole"
	inboundBlackholeChain     = "virtualInbound-blackhole"
	// inboundPassthroughBindIPv4 is the source address of the sidecar's
	// connections to its own workload's address (Istio's
	// InboundPassthroughBindIpv4): the capture rules return traffic from
	// it untouched (ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN).
	inboundPassthroughBindIPv4 = "127.0.0.6"
	// Istio's mesh defaults for proxyListenPort and
	// proxyInboundListenPort.
	defaultProxyListenPort        = 15001
	defaultProxyInboundListenPort = 15006
)

// captureSidecar builds a captured sidecar's listeners: Istio's per-port
// outbound listeners, the virtual outbound listener, the Sidecar's bound
// egress listeners, and the virtual inbound listener.
func (g *generation) captureSidecar() error {
	if err := g.sharedClusters(); err != nil {
		return err
	}
	if err := g.captureOutboundHTTP(); err != nil {
		return err
	}
	if err := g.captureOutboundTCP(); err != nil {
		return err
	}
	if err := g.virtualOutbound(); err != nil {
		return err
	}
	if err := g.boundEgress(); err != nil {
		return err
	}
	return g.captureInbound()
}

// proxyListenPort is meshConfig.proxyListenPort (Istio's default 15001).
func proxyListenPort(mc *meshv1alpha1.MeshConfig) uint32 {
	if p := mc.GetProxyListenPort(); p > 0 {
		return uint32(p)
	}
	return defaultProxyListenPort
}

// proxyInboundListenPort is meshConfig.proxyInboundListenPort (15006).
func proxyInboundListenPort(mc *meshv1alpha1.MeshConfig) uint32 {
	if p := mc.GetProxyInboundListenPort(); p > 0 {
		return uint32(p)
	}
	return defaultProxyInboundListenPort
}

// originalDst is Envoy's original_dst listener filter (Istio's
// xdsfilters.OriginalDestination): it restores a redirected connection's
// destination (SO_ORIGINAL_DST) as its local address.
func originalDst() *listener.ListenerFilter {
	cfg, _ := anypb.New(&origdst.OriginalDst{})
	return &listener.ListenerFilter{Name: OriginalDstFilter, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: cfg}}
}

// virtualOutbound is Istio's virtualOutbound listener: every captured
// outbound connection arrives here and is handed to the listener of its
// original destination (use_original_dst); what none takes gets the
// catch-all chain. A connection addressed to the listener's own port is
// black-holed, so it cannot loop (blackholeFilterChain).
func (g *generation) virtualOutbound() error {
	port := proxyListenPort(g.push.Mesh)
	blackhole, err := tcpProxyChain(BlackHoleCluster, tcpTarget{cluster: BlackHoleCluster}, nil)
	if err != nil {
		return err
	}
	blackhole.Name = outboundBlackholeChain
	blackhole.FilterChainMatch = &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)}
	catchAll, err := g.outboundCatchAll()
	if err != nil {
		return err
	}
	catchAll.Name = outboundCatchAllChain
	g.out.Listeners = append(g.out.Listeners, &listener.Listener{
		Name:             OutboundListenerName,
		Address:          socketAddress("0.0.0.0", port),
		UseOriginalDst:   wrapBool(true),
		ListenerFilters:  []*listener.ListenerFilter{originalDst()},
		FilterChains:     []*listener.FilterChain{blackhole, catchAll},
		TrafficDirection: core.TrafficDirection_OUTBOUND,
	})
	return nil
}

// outboundCatchAll is the chain for captured connections no service
// listener takes (buildOutboundCatchAllNetworkFiltersOnly): tcp_proxy to
// the PassthroughCluster (the original destination) under ALLOW_ANY, to
// the BlackHoleCluster under REGISTRY_ONLY.
func (g *generation) outboundCatchAll() (*listener.FilterChain, error) {
	target := PassthroughCluster
	if p := g.scope.OutboundTrafficPolicy(g.push.Mesh); p != nil && p.Mode == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
		target = BlackHoleCluster
	}
	als, err := g.accessLog(model.ListenerClassSidecarOutbound)
	if err != nil {
		return nil, err
	}
	return tcpProxyChain(target, tcpTarget{cluster: target}, als)
}

// captureHTTPPorts are the ports with a visible HTTP service port: each
// gets a 0.0.0.0_P listener (a port a Sidecar egress listener binds an
// address of its own is served there instead, boundEgress).
func (g *generation) captureHTTPPorts() []uint32 {
	seen := map[uint32]bool{}
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if g.outboundHTTPPort(svc, p) && g.scope.EgressBind(p.Number) == "" {
				seen[p.Number] = true
			}
		}
	}
	return sortedPorts(seen)
}

func sortedPorts(set map[uint32]bool) []uint32 {
	out := make([]uint32, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// captureOutboundHTTP adds, per HTTP port P, Istio's 0.0.0.0_P listener
// (route table "P": virtual hosts by host, short names and VIP, with and
// without ":P"), and for each HTTP service with an address a VIP_P
// listener whose route table "host:P" holds that service's virtual host
// alone (captureVIPListeners).
func (g *generation) captureOutboundHTTP() error {
	for _, port := range g.captureHTTPPorts() {
		routeName := strconv.FormatUint(uint64(port), 10)
		rc, err := g.sharedRouteTable(routeName, port)
		if err != nil {
			return fmt.Errorf("route %s: %w", routeName, err)
		}
		g.addSharedRoute(rc)
		if err := g.captureHTTPListener("0.0.0.0", port, routeName); err != nil {
			return err
		}
		if err := g.captureVIPListeners(port, rc); err != nil {
			return err
		}
	}
	return nil
}

// captureHTTPListener is an outbound HTTP listener at ip:port, not bound,
// as Istio's buildListenerFromEntry builds 0.0.0.0_P: the http_inspector
// sends plaintext HTTP/1.1 and h2c to the connection manager routing by
// routeName, anything else to the PassthroughFilterChain (or to the plain
// TCP service without an address that shares the port,
// captureOutboundTCP).
func (g *generation) captureHTTPListener(ip string, port uint32, routeName string) error {
	name := captureListenerName(ip, port)
	als, err := g.accessLog(model.ListenerClassSidecarOutbound)
	if err != nil {
		return err
	}
	chain, err := httpFilterChain(listenerOptions{
		Name: name, StatPrefix: "outbound_" + name, RouteName: routeName, Direction: core.TrafficDirection_OUTBOUND,
		Tracing: g.tracing(model.ListenerClassSidecarOutbound), Mesh: g.push.Mesh, AccessLog: als,
	})
	if err != nil {
		return fmt.Errorf("listener %s: %w", name, err)
	}
	chain.FilterChainMatch = &listener.FilterChainMatch{TransportProtocol: RawBufferTransportProtocol, ApplicationProtocols: plaintextHTTPALPNs}
	passthroughChain, err := g.outboundCatchAll()
	if err != nil {
		return err
	}
	passthroughChain.Name = PassthroughFilterChain
	g.out.Listeners = append(g.out.Listeners, &listener.Listener{
		Name: name, Address: socketAddress(ip, port), BindToPort: wrapBool(false),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		ListenerFilters:  []*listener.ListenerFilter{httpInspector()},
		// Istio: the mesh's protocolDetectionTimeout with an HTTP
		// inspector (default 0s: none), continuing on timeout.
		ListenerFiltersTimeout:           detectionTimeout(g.push.Mesh),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     []*listener.FilterChain{chain},
		DefaultFilterChain:               passthroughChain,
	})
	return nil
}

// captureVIPListeners gives every visible HTTP service with an address on
// port a VIP_P listener routing by the address connected to: its route
// table "host:P" is the service's virtual host of table "P" alone, with
// domains "*", as Istio builds the listener and route of a service whose
// port protocol is sniffed (buildSidecarOutboundHTTPListenerOpts' rdsName
// hostname:port, getVirtualHostsForSniffedServicePort). Istio's sidecars
// route a declared HTTP port by Host on 0.0.0.0_P alone, so a request to
// one Service's address naming another in Host goes to the other
// (istio/istio#44702, why Istio does not claim Gateway API's
// SupportMeshClusterIPMatching); sluice routes it by the Service it was
// addressed to, as Gateway API's mesh routes (GAMMA) require. Traffic to
// any other address on P (a pod, an external IP) is routed by Host on
// 0.0.0.0_P.
func (g *generation) captureVIPListeners(port uint32, rc *route.RouteConfiguration) error {
	taken := map[string]string{} // VIP -> the service whose listener it is
	for _, svc := range g.push.Services() {
		p, ok := svc.Port(port)
		if !ok || !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) || !g.outboundHTTPPort(svc, p) {
			continue
		}
		vip := serviceVIP(svc)
		if vip == "" {
			continue
		}
		if first, dup := taken[vip]; dup {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("outbound listener %s: %s and %s share the address; connections to it are routed by %s's route table",
				captureListenerName(vip, port), first, svc.Hostname, first))
			continue
		}
		src, err := g.serviceRoute(rc, fmt.Sprintf("%s:%d", svc.Hostname, port))
		if err != nil {
			return err
		}
		if src == nil {
			continue // its names are another service's (claimDomains): routed by Host
		}
		taken[vip] = svc.Hostname
		g.addSharedRoute(src)
		if err := g.captureHTTPListener(vip, port, src.Name); err != nil {
			return err
		}
	}
	return nil
}

// vipRouteKey names a VIP listener's route table: the route table "P" it
// is cut from (shared by pointer) and the virtual host.
type vipRouteKey struct {
	rc   *route.RouteConfiguration
	name string
}

// serviceRoute is route table name holding rc's virtual host name alone,
// its domains "*"; nil when rc has no such virtual host. Built once per
// Generator for each (rc, name), validated when built.
func (g *generation) serviceRoute(rc *route.RouteConfiguration, name string) (*route.RouteConfiguration, error) {
	build := func() (*route.RouteConfiguration, error) {
		for _, vh := range rc.VirtualHosts {
			if vh.Name != name {
				continue
			}
			one := proto.Clone(vh).(*route.VirtualHost)
			one.Domains = []string{"*"}
			out := &route.RouteConfiguration{Name: name, ValidateClusters: wrapBool(false), VirtualHosts: []*route.VirtualHost{one}}
			return out, validateRoute(out)
		}
		return nil, nil
	}
	if g.gen == nil {
		return build()
	}
	return g.gen.vipRoutes.get(vipRouteKey{rc: rc, name: name}, build)
}

// serviceVIP is a service's single-IP address (its first, as Istio's
// GetAddressForProxy; a /32 or /128 CIDR is that IP), "" for none.
func serviceVIP(svc *registry.Service) string {
	if len(svc.Addresses) == 0 {
		return ""
	}
	if ip, err := netip.ParseAddr(svc.Addresses[0]); err == nil {
		return ip.String()
	}
	if pfx, err := netip.ParsePrefix(svc.Addresses[0]); err == nil && pfx.IsSingleIP() {
		return pfx.Addr().String()
	}
	return ""
}

func detectionTimeout(mc *meshv1alpha1.MeshConfig) *durationpb.Duration {
	if t := mc.GetProtocolDetectionTimeout(); t != nil {
		return t
	}
	return durationpb.New(0)
}

// captureListenerName is Istio's getListenerName for TCP: bind_port.
func captureListenerName(bind string, port uint32) string {
	return bind + "_" + strconv.FormatUint(uint64(port), 10)
}

// captureOutboundTCP adds the TCP/TLS service listeners: VIP_P for a
// service with an address (its first, as Istio's GetAddressForProxy),
// 0.0.0.0_P for the services without one, which share that listener told
// apart by SNI (tcpPortListener). Where 0.0.0.0_P is also an HTTP port,
// the plain TCP service takes what is not HTTP in place of the
// passthrough chain, as Istio merges a TCP service into an HTTP listener
// (TCPOverHTTP: the port is then sniffed).
func (g *generation) captureOutboundTCP() error {
	type key struct {
		ip   string
		port uint32
		cidr string
	}
	groups := map[key][]*registry.Service{}
	var keys []key
	for port, svcs := range g.tcpServicesByPort() {
		if g.scope.EgressBind(port) != "" {
			continue
		}
		for _, svc := range svcs {
			ip, cidr := g.serviceListenIP(svc)
			k := key{ip, port, cidr}
			if groups[k] == nil {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], svc)
		}
	}
	// By port; a port's CIDR services last, as chains of its 0.0.0.0_P.
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.port != b.port {
			return a.port < b.port
		}
		if (a.cidr == "") != (b.cidr == "") {
			return a.cidr == ""
		}
		return a.ip+a.cidr < b.ip+b.cidr
	})
	for _, k := range keys {
		name := captureListenerName(k.ip, k.port)
		l, err := g.tcpPortListener(name, k.ip, k.port, k.port, groups[k])
		if err != nil {
			return fmt.Errorf("listener %s: %w", name, err)
		}
		if l == nil {
			continue
		}
		if k.cidr != "" {
			err = g.addCaptureCIDRChains(l, k.cidr)
		} else {
			err = g.addCaptureTCPListener(l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addCaptureCIDRChains adds the chains of a service whose address is a
// CIDR range to 0.0.0.0_P, each matching destinations in the range
// (prefix_ranges), as Istio listens for such a service (a listener on
// 0.0.0.0 with a filter chain match for the CIDR).
func (g *generation) addCaptureCIDRChains(l *listener.Listener, cidr string) error {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	rng := &core.CidrRange{AddressPrefix: pfx.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(pfx.Bits()))}
	for _, c := range l.FilterChains {
		if c.FilterChainMatch == nil {
			c.FilterChainMatch = &listener.FilterChainMatch{}
		}
		c.FilterChainMatch.PrefixRanges = []*core.CidrRange{rng}
	}
	for _, existing := range g.out.Listeners {
		if existing.Name == l.Name {
			existing.FilterChains = append(existing.FilterChains, l.FilterChains...)
			if needsTLSInspector(l.FilterChains) && !needsTLSInspector(existing.FilterChains[:len(existing.FilterChains)-len(l.FilterChains)]) {
				existing.ListenerFilters = append([]*listener.ListenerFilter{tlsInspector()}, existing.ListenerFilters...)
			}
			return nil
		}
	}
	return g.addCaptureTCPListener(l)
}

// addCaptureTCPListener adds a TCP service listener, not bound, with the
// PassthroughFilterChain as default when every chain matches on something
// (SNI); on 0.0.0.0_P already served as HTTP its match-all chain becomes
// that listener's default chain instead.
func (g *generation) addCaptureTCPListener(l *listener.Listener) error {
	l.BindToPort = wrapBool(false)
	var matchAll *listener.FilterChain
	var matched []*listener.FilterChain
	for _, c := range l.FilterChains {
		if c.FilterChainMatch == nil {
			matchAll = c
		} else {
			matched = append(matched, c)
		}
	}
	for _, existing := range g.out.Listeners {
		if existing.Name != l.Name {
			continue
		}
		if matchAll == nil || len(matched) > 0 {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("outbound listener %s: TLS services on an HTTP port without a service address are not served (only plain TCP merges into the HTTP listener)", l.Name))
			g.out.OutboundTCPConflicts++
			return nil
		}
		matchAll.Name = PassthroughFilterChain
		existing.DefaultFilterChain = matchAll
		return nil
	}
	if matchAll == nil {
		passthroughChain, err := g.outboundCatchAll()
		if err != nil {
			return err
		}
		passthroughChain.Name = PassthroughFilterChain
		l.DefaultFilterChain = passthroughChain
	}
	g.out.Listeners = append(g.out.Listeners, l)
	return nil
}

// serviceListenIP is where a captured sidecar listens for a TCP service:
// its first address (a /32 or /128 CIDR is that address), else 0.0.0.0;
// for an address that is a wider CIDR range, 0.0.0.0 and that range
// (Istio's outbound listener for a CIDR service address).
func (g *generation) serviceListenIP(svc *registry.Service) (ip, cidr string) {
	if len(svc.Addresses) == 0 {
		return "0.0.0.0", ""
	}
	if vip := serviceVIP(svc); vip != "" {
		return vip, ""
	}
	if pfx, err := netip.ParsePrefix(svc.Addresses[0]); err == nil {
		return "0.0.0.0", pfx.Masked().String()
	}
	return "0.0.0.0", ""
}
