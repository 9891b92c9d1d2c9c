package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

const testNode = "sidecar~127.0.0.1~web.default~default.svc.cluster.local"

// world is what the test control plane serves: one listener (HCM over
// RDS route), that route config, one EDS cluster "svc" marked with
// clusterTag, and its endpoint on port.
type world struct {
	route      string
	clusterTag string
	port       uint32
}

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
}

func socket(port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}

func (w world) resources(t testing.TB) *xdsgen.Resources {
	manager := &hcm.HttpConnectionManager{StatPrefix: "in",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: w.route, ConfigSource: adsSource()}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
	return &xdsgen.Resources{
		Listeners: []*listener.Listener{{Name: "l", Address: socket(15001),
			FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: anyOf(t, manager)}}}}}}},
		Routes: []*route.RouteConfiguration{{Name: w.route, VirtualHosts: []*route.VirtualHost{{
			Name: "vh", Domains: []string{"*"},
			Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "svc"}}}}}}}}},
		Clusters: []*cluster.Cluster{{Name: "svc", AltStatName: w.clusterTag,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource()}}},
		Endpoints: []*endpoint.ClusterLoadAssignment{{ClusterName: "svc", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{
				Endpoint: &endpoint.Endpoint{Address: socket(w.port)}}}}}}}},
	}
}

// controlPlane is a real xdsserver on loopback serving the current world.
type controlPlane struct {
	t      *testing.T
	mu     sync.Mutex
	world  world
	server *xdsserver.Server
	addr   string
	stop   func()
}

func startControlPlane(t *testing.T, addr string, w world) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, world: w}
	cp.server = xdsserver.New(xdsserver.Options{Generate: func(*model.Proxy) (*xdsgen.Resources, error) {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.world.resources(t), nil
	}})
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the same address again after a restart
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cp.server.Serve(ctx, lis)
	}()
	cp.stop = func() { cancel(); <-done }
	t.Cleanup(cp.stop)
	return cp
}

// set serves w from now on and pushes it.
func (cp *controlPlane) set(w world) {
	cp.t.Helper()
	cp.mu.Lock()
	cp.world = w
	cp.mu.Unlock()
	for _, p := range cp.server.Proxies() {
		if err := cp.server.Push(p); err != nil {
			cp.t.Fatal(err)
		}
	}
}

// typeStatus is what the server booked for the test proxy and a type.
func (cp *controlPlane) typeStatus(typeURL string) xdsserver.TypeStatus {
	for _, p := range cp.server.Status() {
		for _, ts := range p.Types {
			if p.ID == testNode && ts.TypeURL == typeURL {
				return ts
			}
		}
	}
	return xdsserver.TypeStatus{}
}

// proxy is the client side: it accepts every view unless the cluster is
// tagged "bad", and keeps the views it accepted.
type proxy struct {
	mu       sync.Mutex
	accepted []Resources
	applied  int
}

// apply compiles nothing but does what a compiler must: names the EDS
// and RDS resources the view refers to, and rejects what it cannot honour.
func (p *proxy) apply(r Resources) (Dependencies, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied++
	var deps Dependencies
	for _, m := range r.Items[ClusterType] {
		c := m.(*cluster.Cluster)
		if c.AltStatName == "bad" {
			return Dependencies{}, errors.New("cluster svc: alt_stat_name bad is not honoured")
		}
		if c.GetType() == cluster.Cluster_EDS {
			deps.Endpoints = append(deps.Endpoints, c.Name)
		}
	}
	for _, m := range r.Items[ListenerType] {
		for _, fc := range m.(*listener.Listener).FilterChains {
			for _, f := range fc.Filters {
				var manager hcm.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&manager); err != nil {
					return Dependencies{}, err
				}
				deps.Routes = append(deps.Routes, manager.GetRds().GetRouteConfigName())
			}
		}
	}
	p.accepted = append(p.accepted, r)
	return deps, nil
}

// last is the newest accepted view.
func (p *proxy) last() Resources {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.accepted) == 0 {
		return Resources{}
	}
	return p.accepted[len(p.accepted)-1]
}

// describe is a view in short: route names, cluster tag, endpoint port.
func describe(r Resources) string {
	var routes, tag string
	var port uint32
	for name := range r.Items[RouteType] {
		routes += name
	}
	if c, ok := r.Items[ClusterType]["svc"].(*cluster.Cluster); ok {
		tag = c.AltStatName
	}
	if e, ok := r.Items[EndpointType]["svc"].(*endpoint.ClusterLoadAssignment); ok {
		port = e.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().GetPortValue()
	}
	return fmt.Sprintf("routes=%s cluster=%s port=%d", routes, tag, port)
}

func startClient(t *testing.T, addr string) *proxy {
	p := &proxy{}
	c := New(Options{Address: addr, Node: &core.Node{Id: testNode}, Apply: p.apply})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantView(t *testing.T, p *proxy, what, want string) {
	t.Helper()
	eventually(t, what, func() error {
		if got := describe(p.last()); got != want {
			return fmt.Errorf("accepted view %q, want %q", got, want)
		}
		return nil
	})
}

// allAcked waits until the server booked an ACK of what it last sent for
// every type.
func allAcked(t *testing.T, cp *controlPlane) {
	t.Helper()
	eventually(t, "every type ACKed", func() error {
		for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
			ts := cp.typeStatus(typ)
			if ts.SentVersion == "" || ts.AckedVersion != ts.SentVersion || ts.Nack != "" {
				return fmt.Errorf("%s: %+v", typ, ts)
			}
		}
		return nil
	})
}

// The client subscribes to CDS and LDS, follows them to the EDS and RDS
// names they refer to, ACKs every type, and follows a renamed route.
func TestClientSubscribesFollowsAndAcks(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", world{route: "r1", clusterTag: "one", port: 8080})
	p := startClient(t, cp.addr)
	wantView(t, p, "the first full view", "routes=r1 cluster=one port=8080")
	allAcked(t, cp)

	// The listener now names another route config: the client follows it
	// and the view holds the new one only.
	cp.set(world{route: "r2", clusterTag: "one", port: 8080})
	wantView(t, p, "the renamed route", "routes=r2 cluster=one port=8080")
	allAcked(t, cp)
}

// A response the compiler rejects is NACKed with its reason; the last good
// view stays, and later updates build on it, not on the rejected one.
func TestClientNackKeepsLastGood(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", world{route: "r1", clusterTag: "one", port: 8080})
	p := startClient(t, cp.addr)
	wantView(t, p, "the first full view", "routes=r1 cluster=one port=8080")
	allAcked(t, cp)
	goodCDS := cp.typeStatus(ClusterType).AckedVersion

	cp.set(world{route: "r1", clusterTag: "bad", port: 8080})
	eventually(t, "the NACK to reach the server", func() error {
		ts := cp.typeStatus(ClusterType)
		if ts.Nack != "cluster svc: alt_stat_name bad is not honoured" || ts.AckedVersion != goodCDS {
			return fmt.Errorf("CDS status %+v", ts)
		}
		return nil
	})
	if got := describe(p.last()); got != "routes=r1 cluster=one port=8080" {
		t.Errorf("after the NACK the accepted view is %q", got)
	}

	// An endpoint change applies on top of the last good clusters.
	cp.set(world{route: "r1", clusterTag: "bad", port: 9090})
	wantView(t, p, "the endpoint change", "routes=r1 cluster=one port=9090")

	// A good cluster again is accepted and clears the NACK.
	cp.set(world{route: "r1", clusterTag: "two", port: 9090})
	wantView(t, p, "the fixed cluster", "routes=r1 cluster=two port=9090")
	allAcked(t, cp)
}

// When the control plane goes away the accepted view stays in force; the
// client reconnects, resubscribes (EDS and RDS names included) and takes
// the new control plane's config.
func TestClientReconnects(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", world{route: "r1", clusterTag: "one", port: 8080})
	addr := cp.addr
	p := startClient(t, addr)
	wantView(t, p, "the first full view", "routes=r1 cluster=one port=8080")

	cp.stop()
	time.Sleep(300 * time.Millisecond)
	if got := describe(p.last()); got != "routes=r1 cluster=one port=8080" {
		t.Errorf("while disconnected the accepted view is %q", got)
	}

	cp2 := startControlPlane(t, addr, world{route: "r1", clusterTag: "two", port: 9090})
	wantView(t, p, "the new control plane's config", "routes=r1 cluster=two port=9090")
	allAcked(t, cp2)
}
