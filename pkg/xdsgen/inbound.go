package xdsgen

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// unixPrefix starts a unix domain socket address in a Sidecar's
// defaultEndpoint, as Istio writes it (model.UnixAddressPrefix).
const unixPrefix = "unix://"

// inboundPort is one port a sidecar serves for its workload: a listener at
// host:port whose traffic goes to the app.
type inboundPort struct {
	host string
	port uint32
	// app is where the app listens: host:port, or a unix socket path
	// when pipe is set.
	appHost string
	appPort uint32
	pipe    string
	// http says the port carries HTTP (routed per request); otherwise its
	// connections are proxied to the app as they are.
	http bool
	// h2 says the port is HTTP/2 or gRPC: the app is spoken to in h2c
	// (Istio's setUpstreamProtocol on the inbound cluster).
	h2 bool
	// sniff says the port's protocol is not known (no service port
	// declares it, or its protocol is UNKNOWN): each connection is sniffed
	// and served by an HTTP or a TCP chain (inbound_sniff.go), as Istio's
	// ListenerProtocolAuto.
	sniff bool
	// passthrough says the app is the connection's original destination
	// (a captured sidecar: Istio's ORIGINAL_DST inbound cluster, reached
	// from 127.0.0.6), not app.
	passthrough bool
}

// setProtocol records a port's protocol: HTTP-family, UNKNOWN (sniffed)
// or opaque.
func (p *inboundPort) setProtocol(proto registry.Protocol) {
	p.sniff = proto == registry.ProtocolUnknown
	p.http = !p.sniff && proto.IsHTTP()
	p.h2 = proto == registry.ProtocolHTTP2 || proto == registry.ProtocolGRPC
}

// inbound adds, for every port the sidecar serves, the listener, route and
// cluster that take mesh traffic to the application. Istio keys inbound
// listeners and clusters by the workload port (BuildInboundSubsetKey), the
// port traffic arrives at; so does sluice.
func (g *generation) inbound() error {
	ports, err := g.inboundPorts()
	if err != nil {
		return err
	}
	// The workload's PeerAuthentication; portLevelMtls is keyed by the
	// workload port: the inbound port (a WorkloadEntry's port), or the
	// container port (service targetPort) it stands in for.
	pa := g.push.PeerAuthenticationFor(g.proxy.Namespace, g.proxy.Labels)
	for _, p := range ports {
		if err := g.inboundListener(p, pa.ModeForPorts(g.push.WorkloadPorts(p.host, p.port))); err != nil {
			return fmt.Errorf("inbound port %d: %w", p.port, err)
		}
	}
	return nil
}

// inboundPorts lists the ports to serve, by workload port. With a Sidecar
// whose ingress listeners apply, those are the ports (Istio's
// buildInboundChainConfigs without service-port merging); otherwise every
// --inbound-address/--app-address pair is one.
func (g *generation) inboundPorts() ([]inboundPort, error) {
	if len(g.scope.Ingress()) > 0 {
		return g.ingressPorts()
	}
	if g.proxy.Captured() && len(g.proxy.Inbound) == 0 {
		return g.capturedInboundPorts(), nil
	}
	var out []inboundPort
	seen := map[uint32]string{}
	for _, in := range g.proxy.Inbound {
		host, port, err := hostport.ParseAddr(in.Address)
		if err != nil {
			return nil, fmt.Errorf("inbound address: %w", err)
		}
		if prev, dup := seen[port]; dup {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("inbound address %s: port %d is already served at %s; inbound ports are told apart by port, as Istio's are", in.Address, port, prev))
			g.out.InboundListenerConflicts++
			continue
		}
		seen[port] = in.Address
		p := inboundPort{host: host, port: port}
		p.setProtocol(g.inboundProtocol(host, port))
		if err := g.setApp(&p, in.App); err != nil {
			return nil, fmt.Errorf("app address of %s: %w", in.Address, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ingressPorts are the Sidecar's ingress listeners in local mode. The
// listener for port P binds at spec.ingress.bind:P if set, else at the
// --inbound-address whose port is P, else at the proxy's IP (the address
// a WorkloadEntry of the workload names) on P. Traffic goes to the
// defaultEndpoint, else to that --inbound-address's --app-address.
// Inbound addresses on ports no ingress listener names are not served, as
// in Istio; each is reported.
func (g *generation) ingressPorts() ([]inboundPort, error) {
	byPort := map[uint32]int{}
	for i, in := range g.proxy.Inbound {
		if _, port, err := hostport.ParseAddr(in.Address); err == nil {
			byPort[port] = i
		}
	}
	name := g.scope.Resource.Namespace + "/" + g.scope.Resource.Name
	var out []inboundPort
	for i, in := range g.scope.Ingress() {
		field := fmt.Sprintf("Sidecar %s spec.ingress[%d]", name, i)
		p := inboundPort{host: in.Bind, port: in.Port.GetNumber()}
		if g.proxy.Captured() && in.CaptureMode == networking.CaptureMode_NONE {
			// Istio: a captured sidecar still binds an ingress
			// listener whose captureMode is NONE (getBindToPort).
			if g.boundInbound == nil {
				g.boundInbound = map[uint32]bool{}
			}
			g.boundInbound[p.port] = true
		}
		p.setProtocol(registry.ProtocolFromPort(in.Port.GetProtocol(), in.Port.GetName()))
		pair, hasPair := byPort[p.port]
		if p.host == "" && hasPair {
			p.host, _, _ = hostport.ParseAddr(g.proxy.Inbound[pair].Address)
		}
		if p.host == "" {
			p.host = g.instanceIP()
		}
		app := in.DefaultEndpoint
		if app == "" && hasPair {
			app = g.proxy.Inbound[pair].App
		}
		if app == "" && g.proxy.Captured() {
			// Istio: no defaultEndpoint means the original destination.
			p.passthrough = true
			out = append(out, p)
			delete(byPort, p.port)
			continue
		}
		if app == "" {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("%s: port %d has no defaultEndpoint and the proxy no --app-address for it; not served", field, p.port))
			continue
		}
		if err := g.setApp(&p, app); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, p)
		delete(byPort, p.port)
	}
	left := make([]uint32, 0, len(byPort))
	for port := range byPort {
		left = append(left, port)
	}
	sort.Slice(left, func(i, j int) bool { return left[i] < left[j] })
	for _, port := range left {
		g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("inbound address %s: not served: Sidecar %s has ingress listeners and none for port %d (Istio then serves only those)",
			g.proxy.Inbound[byPort[port]].Address, name, port))
	}
	return out, nil
}

// setApp reads where the app listens: host:port, or a Sidecar
// defaultEndpoint (127.0.0.1:P or [::1]:P the loopback, 0.0.0.0:P or
// [::]:P the instance IP, unix:///path a socket), as Istio's
// buildInboundClustersFromSidecar reads it.
func (g *generation) setApp(p *inboundPort, app string) error {
	if path, ok := strings.CutPrefix(app, unixPrefix); ok {
		if path == "" {
			return fmt.Errorf("%q names no socket path", app)
		}
		p.pipe = path
		return nil
	}
	host, port, err := net.SplitHostPort(app)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", app, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("%q: bad port", app)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = g.instanceIP()
	}
	p.appHost, p.appPort = host, uint32(n)
	return nil
}

// instanceIP is the proxy's first IP (--ip), the address its WorkloadEntry
// names in local mode.
func (g *generation) instanceIP() string {
	if len(g.proxy.IPs) > 0 && g.proxy.IPs[0] != "" {
		return g.proxy.IPs[0]
	}
	return "127.0.0.1"
}

// inboundProtocol is the protocol of the service port whose endpoint is
// host:port (the WorkloadEntry's port map points at the inbound address):
// HTTP if any such port is HTTP-family, TCP if all are opaque, UNKNOWN
// (sniffed, as Istio's inbound passthrough and auto ports) when no service
// port declares it or one declares it without a known protocol.
func (g *generation) inboundProtocol(host string, port uint32) registry.Protocol {
	found, unknown := false, false
	for _, h := range g.endpointHits(host, port) {
		switch {
		case h.port.Protocol == registry.ProtocolUnknown:
			unknown = true
		case h.port.Protocol.IsHTTP():
			return h.port.Protocol
		}
		found = true
	}
	if found && !unknown {
		return registry.ProtocolTCP
	}
	return registry.ProtocolUnknown
}

// inboundListener adds the cluster to the app and the listener (HTTP with
// its route table, or tcp_proxy, or both on a sniffed port) for one
// inbound port, with the filter chains of the port's PeerAuthentication
// mode (inbound_mtls.go, inbound_sniff.go). Every chain of a known port
// matches on transport_protocol, so its listener has the tls_inspector.
func (g *generation) inboundListener(p inboundPort, mode model.MTLSMode) error {
	clusterName := ClusterName("inbound", p.port, "", "")
	c := inboundCluster(clusterName, p)
	g.setInboundServices(c, p.host, p.port) // stats.go
	g.out.Clusters = append(g.out.Clusters, c)
	name := fmt.Sprintf("%s_%d", InboundListenerName, p.port)
	als, err := g.accessLog(model.ListenerClassSidecarInbound)
	if err != nil {
		return err
	}
	buildTCP := func() (*listener.FilterChain, error) {
		chain, err := tcpProxyChain("inbound_tcp", tcpTarget{cluster: clusterName}, als)
		if err != nil {
			return nil, err
		}
		// Network RBAC before tcp_proxy on every chain (security.go).
		return chain, g.secureTCPChains(chain)
	}
	build := buildTCP
	var buildHTTP inboundChainBuilder
	if p.http || p.sniff {
		sec, err := g.securityHTTPFilters()
		if err != nil {
			return err
		}
		routeName := fmt.Sprintf("inbound|%d", p.port)
		opts := listenerOptions{
			Name: name, StatPrefix: "inbound", RouteName: routeName, Direction: core.TrafficDirection_INBOUND,
			Tracing: g.tracing(model.ListenerClassSidecarInbound), Mesh: g.push.Mesh, XFCC: xfccSidecarInbound, SecurityFilters: sec, AccessLog: als,
		}
		buildHTTP = func() (*listener.FilterChain, error) { return httpFilterChain(opts) }
		build = buildHTTP
		g.out.Routes = append(g.out.Routes, inboundRoute(routeName, clusterName, p.port))
	}
	if p.sniff {
		l, err := g.sniffedInboundListener(name, p, mode, buildHTTP, buildTCP)
		if err != nil {
			return err
		}
		g.out.Listeners = append(g.out.Listeners, l)
		return nil
	}
	chains, err := g.inboundChains(mode, p.http, build)
	if err != nil {
		return err
	}
	g.out.Listeners = append(g.out.Listeners, &listener.Listener{
		Name: name, Address: socketAddress(p.host, p.port), TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters: []*listener.ListenerFilter{tlsInspector()}, FilterChains: chains,
	})
	return nil
}

// inboundRoute sends every request of an inbound HTTP port to the app.
func inboundRoute(routeName, clusterName string, port uint32) *route.RouteConfiguration {
	return &route.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*route.VirtualHost{{
			Name:    fmt.Sprintf("inbound|http|%d", port),
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Name:  "default",
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
					Timeout:          durationpb.New(0),
					RetryPolicy:      inboundRetryPolicy(),
				}},
			}},
		}},
	}
}

// inboundCluster is the static cluster to the app: one endpoint, a socket
// address or a unix socket (Envoy's pipe address), spoken to in h2c on an
// HTTP/2 or gRPC port.
func inboundCluster(name string, p inboundPort) *cluster.Cluster {
	c := appCluster(name, p)
	if !p.h2 {
		return c
	}
	b := &clusterBuild{c: c}
	b.setHTTP2()
	return b.finish()
}

func appCluster(name string, p inboundPort) *cluster.Cluster {
	if p.passthrough {
		// Istio's buildInboundCluster with no bind address.
		return &cluster.Cluster{
			Name:                 name,
			ConnectTimeout:       durationpb.New(defaultConnectTimeout),
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
			LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
			UpstreamBindConfig:   passthroughBind(),
		}
	}
	if p.pipe == "" {
		return staticCluster(name, p.appHost, p.appPort)
	}
	c := staticCluster(name, "", 0)
	c.LoadAssignment = &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
		LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: p.pipe}}},
		}}}},
	}}}
	return c
}
