package dataplane

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// TestCompileConnect: what the control plane generates for CONNECT
// compiles: the outbound connection manager allows CONNECT, the
// connect_matcher routes terminate it, and the internal listener serving
// tunnels to HTTP ports is compiled (not bound) with its cluster.
func TestCompileConnect(t *testing.T) {
	rt := compileGolden(t, nil, NewStatsStore())
	out := rt.Listeners[xdsgen.OutboundListenerName]
	if out == nil || !out.Chains[0].Upgrades["connect"] || out.Internal {
		t.Fatalf("outbound listener %+v: want CONNECT allowed", out)
	}
	il := rt.Listeners[xdsgen.ConnectHTTPListener]
	if il == nil || !il.Internal || il.Address != "" || il.RouteName != xdsgen.OutboundRouteName {
		t.Fatalf("internal listener %+v", il)
	}
	if rt.Internal[xdsgen.ConnectHTTPCluster] != xdsgen.ConnectHTTPListener {
		t.Errorf("internal clusters %v", rt.Internal)
	}
	if _, ok := rt.Clusters[xdsgen.ConnectHTTPCluster]; ok {
		t.Errorf("the internal listener's cluster is also an upstream cluster")
	}
}

func internalEndpoint(name, id string) *endpoint.LbEndpoint {
	return &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
		Address: &core.Address{Address: &core.Address_EnvoyInternalAddress{EnvoyInternalAddress: &core.EnvoyInternalAddress{
			AddressNameSpecifier: &core.EnvoyInternalAddress_ServerListenerName{ServerListenerName: name}, EndpointId: id,
		}}},
	}}}
}

func internalClusterOf(eps ...*endpoint.LbEndpoint) *cluster.Cluster {
	return &cluster.Cluster{Name: "c", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: eps}}}}
}

// TestInternalNACK: what the proxy does not honour about internal
// listeners and their clusters is refused by name.
func TestInternalNACK(t *testing.T) {
	if ln, ok, err := internalCluster(internalClusterOf(internalEndpoint("l", ""))); !ok || err != nil || ln != "l" {
		t.Errorf("internal cluster: %q %v %v", ln, ok, err)
	}
	socket := &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "127.0.0.1",
			PortSpecifier: &core.SocketAddress_PortValue{PortValue: 80}}}}}}}
	if _, ok, err := internalCluster(internalClusterOf(socket)); ok || err != nil {
		t.Errorf("a socket cluster taken for internal: %v %v", ok, err)
	}
	withCB := internalClusterOf(internalEndpoint("l", ""))
	withCB.CircuitBreakers = &cluster.CircuitBreakers{}
	for want, c := range map[string]*cluster.Cluster{
		"endpoint_id":      internalClusterOf(internalEndpoint("l", "x")),
		"one endpoint":     internalClusterOf(internalEndpoint("l", ""), socket),
		"circuit_breakers": withCB,
	} {
		if _, _, err := internalCluster(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
	rt := compileGolden(t, nil, NewStatsStore())
	src := rt.Source.Items[xdsclient.ListenerType][xdsgen.ConnectHTTPListener].(*listener.Listener)
	bad := map[string]func(*listener.Listener){
		"exactly one filter chain": func(l *listener.Listener) {
			l.FilterChains[0].FilterChainMatch = &listener.FilterChainMatch{ServerNames: []string{"x"}}
		},
		"with an address": func(l *listener.Listener) {
			l.Address = &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "127.0.0.1",
				PortSpecifier: &core.SocketAddress_PortValue{PortValue: 1}}}}
		},
		"listener filters": func(l *listener.Listener) {
			l.ListenerFilters = []*listener.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector"}}
		},
	}
	for want, edit := range bad {
		l := proto.Clone(src).(*listener.Listener)
		edit(l)
		if _, err := compileListener(l, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}
