package xdsgen

import (
	"fmt"
	"net"
	"sort"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// TCPProxyFilter is Envoy's name for the TCP proxy network filter.
const TCPProxyFilter = "envoy.filters.network.tcp_proxy"

// tcpTarget is where a TCP connection goes: one cluster or a weighted set.
type tcpTarget struct {
	cluster  string
	weighted []*tcpproxy.TcpProxy_WeightedCluster_ClusterWeight
}

// tcpProxyChain is a filter chain holding only a tcp_proxy to target,
// with access log als (generation.accessLog, accesslog.go), as on every
// Istio tcp_proxy.
func tcpProxyChain(statPrefix string, target tcpTarget, als []*accesslogv3.AccessLog) (*listener.FilterChain, error) {
	tp := &tcpproxy.TcpProxy{StatPrefix: statPrefix, AccessLog: als}
	if len(target.weighted) > 0 {
		tp.ClusterSpecifier = &tcpproxy.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxy.TcpProxy_WeightedCluster{Clusters: target.weighted}}
	} else {
		tp.ClusterSpecifier = &tcpproxy.TcpProxy_Cluster{Cluster: target.cluster}
	}
	typed, err := anypb.New(tp)
	if err != nil {
		return nil, err
	}
	return &listener.FilterChain{Filters: []*listener.Filter{{Name: TCPProxyFilter, ConfigType: &listener.Filter_TypedConfig{TypedConfig: typed}}}}, nil
}

// tcpMatchContext is what a TCP or TLS route match is checked against.
type tcpMatchContext struct {
	port    uint32
	gateway string // "mesh" or "ns/name"
	// destIP is the address the client connected to (the listener's IP in
	// local mode), for destinationSubnets.
	destIP string
}

func (g *generation) l4MatchApplies(port uint32, subnets []string, sourceLabels map[string]string, sourceNS string, gateways []string, vs *model.VirtualService, mc tcpMatchContext) bool {
	if port != 0 && port != mc.port {
		return false
	}
	if !registry.LabelsMatch(sourceLabels, g.proxy.Labels) {
		return false
	}
	if sourceNS != "" && sourceNS != g.proxy.Namespace {
		return false
	}
	if len(gateways) > 0 && !containsString(model.ResolveGateways(gateways, vs.Namespace), mc.gateway) {
		return false
	}
	if len(subnets) > 0 && !inSubnets(mc.destIP, subnets) {
		return false
	}
	return true
}

func inSubnets(ip string, subnets []string) bool {
	addr := net.ParseIP(ip)
	for _, s := range subnets {
		if !strings.Contains(s, "/") {
			if s == ip {
				return true
			}
			continue
		}
		if _, n, err := net.ParseCIDR(s); err == nil && addr != nil && n.Contains(addr) {
			return true
		}
	}
	return false
}

// tcpRouteTarget finds the first tcp route of vsList that applies, in
// order, and returns its destinations; ok is false when none applies.
func (g *generation) tcpRouteTarget(vsList []*model.VirtualService, mc tcpMatchContext) (tcpTarget, bool) {
	for _, vs := range vsList {
		for _, tr := range vs.Spec.Tcp {
			applies := len(tr.Match) == 0
			for _, m := range tr.Match {
				if g.l4MatchApplies(m.Port, m.DestinationSubnets, m.SourceLabels, m.SourceNamespace, m.Gateways, vs, mc) {
					applies = true
					break
				}
			}
			if applies {
				return g.l4Destinations(tr.Route, vs.Namespace, mc.port), true
			}
		}
	}
	return tcpTarget{}, false
}

// l4Destinations turns route destinations into a tcp_proxy target.
func (g *generation) l4Destinations(dests []*networking.RouteDestination, ns string, port uint32) tcpTarget {
	rc := routeContext{port: port}
	if len(dests) == 1 {
		return tcpTarget{cluster: g.destinationCluster(dests[0].Destination, ns, rc)}
	}
	var t tcpTarget
	for _, d := range dests {
		if d.Weight <= 0 {
			continue
		}
		t.weighted = append(t.weighted, &tcpproxy.TcpProxy_WeightedCluster_ClusterWeight{
			Name: g.destinationCluster(d.Destination, ns, rc), Weight: uint32(d.Weight),
		})
	}
	if len(t.weighted) == 0 {
		return tcpTarget{cluster: BlackHoleCluster}
	}
	return t
}

// sniTarget is where connections for some TLS server names go: one tls
// route's destinations.
type sniTarget struct {
	names  []string // sorted
	target tcpTarget
}

// tlsRouteTargets lists, per applicable tls route of vsList in order, the
// server names it claims (hosts limited by admit; nil admits all) and its
// destinations. Earlier routes win a server name.
func (g *generation) tlsRouteTargets(vsList []*model.VirtualService, mc tcpMatchContext, admit func(vs *model.VirtualService, sni string) (string, bool)) []sniTarget {
	var out []sniTarget
	claimed := map[string]bool{}
	for _, vs := range vsList {
		for _, tr := range vs.Spec.Tls {
			var names []string
			for _, m := range tr.Match {
				if !g.l4MatchApplies(m.Port, m.DestinationSubnets, m.SourceLabels, m.SourceNamespace, m.Gateways, vs, mc) {
					continue
				}
				for _, sni := range m.SniHosts {
					sni = config.ResolveHost(sni, vs.Namespace, "")
					if admit != nil {
						var ok bool
						if sni, ok = admit(vs, sni); !ok {
							continue
						}
					}
					if !claimed[sni] {
						claimed[sni] = true
						names = append(names, sni)
					}
				}
			}
			if len(names) == 0 {
				continue
			}
			sort.Strings(names)
			out = append(out, sniTarget{names: names, target: g.l4Destinations(tr.Route, vs.Namespace, mc.port)})
		}
	}
	return out
}

// tlsChains builds one SNI-matched chain per applicable tls route match of
// vsList, hosts limited by admit (nil admits all). Earlier routes win a
// server name.
func (g *generation) tlsChains(vsList []*model.VirtualService, mc tcpMatchContext, statPrefix string, admit func(vs *model.VirtualService, sni string) (string, bool)) ([]*listener.FilterChain, error) {
	var chains []*listener.FilterChain
	als, err := g.accessLog(g.outboundClass())
	if err != nil {
		return nil, err
	}
	for _, st := range g.tlsRouteTargets(vsList, mc, admit) {
		chain, err := tcpProxyChain(statPrefix, st.target, als)
		if err != nil {
			return nil, err
		}
		chain.FilterChainMatch = &listener.FilterChainMatch{ServerNames: st.names}
		chains = append(chains, chain)
	}
	return chains, nil
}

// gatewayL4Chains builds the chains of a gateway port's TCP or TLS
// passthrough servers.
func (g *generation) gatewayL4Chains(port uint32, s *model.GatewayServer) ([]*listener.FilterChain, error) {
	mc := tcpMatchContext{port: port, gateway: s.Name, destIP: g.proxy.BindAddress}
	vsList := g.admittedVirtualServices(s)
	stat := fmt.Sprintf("%s.%d", strings.ToLower(s.Kind()), port)
	if s.Kind() == "passthrough" {
		return g.tlsChains(vsList, mc, stat, func(vs *model.VirtualService, sni string) (string, bool) {
			for _, entry := range s.Spec.Hosts {
				if d, ok := model.GatewayHostAdmits(entry, s.Gateway.Namespace, vs.Namespace, sni); ok {
					return d, true
				}
			}
			return "", false
		})
	}
	target, ok := g.tcpRouteTarget(vsList, mc)
	if !ok {
		g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("Gateway %s port %d: no VirtualService tcp route applies; connections are refused", s.Name, port))
		return nil, nil
	}
	als, err := g.accessLog(model.ListenerClassGateway)
	if err != nil {
		return nil, err
	}
	chain, err := tcpProxyChain(stat, target, als)
	if err != nil {
		return nil, err
	}
	if s.TLSTerminating() {
		tls, err := g.downstreamTLS(s)
		if err != nil {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("Gateway %s port %d: %v; the server is not served", s.Name, port, err))
			return nil, nil
		}
		chain.TransportSocket = tls
		chain.FilterChainMatch = &listener.FilterChainMatch{ServerNames: sniNames(s.Spec.Hosts)}
	}
	return []*listener.FilterChain{chain}, nil
}

// admittedVirtualServices are the VirtualServices bound to s's Gateway with
// a host some server host admits.
func (g *generation) admittedVirtualServices(s *model.GatewayServer) []*model.VirtualService {
	var out []*model.VirtualService
	for _, vs := range g.push.VirtualServicesFor(s.Name, s.Gateway.Namespace) {
		if len(admittedDomains(s, vs)) > 0 {
			out = append(out, vs)
		}
	}
	return out
}
