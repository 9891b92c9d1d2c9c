package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testSnapshot is a small sidecar-shaped config: an EDS cluster whose
// ClusterLoadAssignment has its own name (eds service_name), a static
// cluster, a listener naming route configuration "80" through an HTTP
// connection manager, and that route configuration weighting two subsets.
func testSnapshot(t *testing.T, version, ip string, weight uint32) *cachev3.Snapshot {
	t.Helper()
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	eds := &cluster.Cluster{Name: "outbound|80||a", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{EdsConfig: ads, ServiceName: "eds-a"}}
	static := &cluster.Cluster{Name: "static", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}}
	addr := &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: ip,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080}}}}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: "eds-a", Endpoints: []*endpoint.LocalityLbEndpoints{{
		LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: addr}}}}}}}
	m, err := anypb.New(&hcm.HttpConnectionManager{StatPrefix: "out", RouteSpecifier: &hcm.HttpConnectionManager_Rds{
		Rds: &hcm.Rds{ConfigSource: ads, RouteConfigName: "80"}}})
	if err != nil {
		t.Fatal(err)
	}
	lis := &listener.Listener{Name: "outbound", FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: m}}}}}}
	weighted := &route.WeightedCluster{Clusters: []*route.WeightedCluster_ClusterWeight{
		{Name: "outbound|80|v1|a.ns.svc.cluster.local", Weight: wrapperspb.UInt32(weight)},
		{Name: "outbound|80|v2|a.ns.svc.cluster.local", Weight: wrapperspb.UInt32(100 - weight)}}}
	rc := &route.RouteConfiguration{Name: "80", VirtualHosts: []*route.VirtualHost{
		{Name: "other:80", Domains: []string{"other.ns.svc.cluster.local"}},
		{Name: "a:80", Domains: []string{"a.ns.svc.cluster.local"}, Routes: []*route.Route{{
			Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_WeightedClusters{WeightedClusters: weighted}}}}}}}}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType: {eds, static}, resourcev3.EndpointType: {cla},
		resourcev3.ListenerType: {lis}, resourcev3.RouteType: {rc},
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// startServer serves go-control-plane's ADS (SotW and Delta) from a
// snapshot cache on a loopback port.
func startServer(t *testing.T, cache cachev3.SnapshotCache) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, cache, nil))
	go g.Serve(lis)
	t.Cleanup(func() { cancel(); g.Stop() })
	return lis.Addr().String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The simulated proxy follows CDS to EDS (by the cluster's EDS service
// name) and LDS to RDS, is ready once it holds all four, and sees an
// endpoint and a weight change as the watches describe them, over both
// protocols.
func TestSimProxyFollowsAndMeasures(t *testing.T) {
	for _, proto := range []string{protoSotW, protoDelta} {
		t.Run(proto, func(t *testing.T) {
			node := &core.Node{Id: "sidecar~127.0.0.1~p.ns~ns.svc.cluster.local"}
			cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
			if err := cache.SetSnapshot(context.Background(), node.Id, testSnapshot(t, "1", "10.0.0.1", 90)); err != nil {
				t.Fatal(err)
			}
			addr := startServer(t, cache)
			var w atomic.Pointer[watch]
			var active atomic.Int64
			p := newSim(simOptions{Address: addr, Node: node, Protocol: proto, Watch: &w, Activity: &active,
				Dial: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "ready", func() bool { _, ok := p.readiness(); return ok || p.failure() != nil })
			if err := p.failure(); err != nil {
				t.Fatal(err)
			}
			if !p.holdsCluster("outbound|80||a") || p.holdsCluster("eds-a") {
				t.Fatalf("clusters held: %v", p.clusters)
			}
			p.mu.Lock()
			heldEDS, heldRDS := p.held[endpointType]["eds-a"], p.held[routeType]["80"]
			p.mu.Unlock()
			if !heldEDS || !heldRDS {
				t.Fatalf("EDS eds-a held %v, RDS 80 held %v", heldEDS, heldRDS)
			}

			ep := &watch{start: time.Now(), typeURL: endpointType, match: func(_, name string, b []byte) (bool, error) {
				if name != "eds-a" {
					return false, nil
				}
				return hasEndpoint(b, "10.0.0.2")
			}}
			w.Store(ep)
			if err := cache.SetSnapshot(context.Background(), node.Id, testSnapshot(t, "2", "10.0.0.2", 90)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the new endpoint", func() bool { return !p.stats(ep).got.IsZero() })
			if st := p.stats(ep); st.bytes <= 0 || st.responses < 1 || st.first.After(st.got) {
				t.Fatalf("endpoint phase stats: %+v", st)
			}

			rt := &watch{start: time.Now(), typeURL: routeType, match: func(_, _ string, b []byte) (bool, error) {
				return hasWeight(b, "a.ns.svc.cluster.local", "outbound|80|v1|a.ns.svc.cluster.local", 63)
			}}
			w.Store(rt)
			if err := cache.SetSnapshot(context.Background(), node.Id, testSnapshot(t, "3", "10.0.0.2", 63)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the new weight", func() bool { return !p.stats(rt).got.IsZero() })
			if err := p.failure(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A server without ADS answers Unimplemented, which -protocol auto takes
// as "use SotW".
func TestDeltaUnimplementedDetected(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	go g.Serve(lis)
	defer g.Stop()
	var w atomic.Pointer[watch]
	var active atomic.Int64
	p := newSim(simOptions{Address: lis.Addr().String(), Node: &core.Node{Id: "x"}, Protocol: protoDelta, Watch: &w, Activity: &active,
		Dial: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.run(ctx)
	if !isUnimplemented(err) {
		t.Fatalf("run: %v, want Unimplemented", err)
	}
}
