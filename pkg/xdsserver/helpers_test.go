package xdsserver

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const testNode = "sidecar~127.0.0.1~web.default~default.svc.cluster.local"

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
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

// testResources is one listener (HCM over RDS "routes"), its route
// config, one EDS cluster "svc" and its endpoints. tag marks the content
// (the cluster's alt_stat_name and the virtual host's name), so each tag
// is a new version of every type. Without routes, the listener names a
// route config that is not served: an inconsistent snapshot.
func testResources(t testing.TB, tag string, withRoutes bool) *xdsgen.Resources {
	t.Helper()
	manager := &hcm.HttpConnectionManager{StatPrefix: "in",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "routes", ConfigSource: adsSource()}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}}}
	res := &xdsgen.Resources{
		Listeners: []*listener.Listener{{Name: "l",
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001}}}},
			FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, manager)}}}}}}},
		Clusters: []*cluster.Cluster{{Name: "svc", AltStatName: "svc-" + tag,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource()}}},
		Endpoints: []*endpoint.ClusterLoadAssignment{{ClusterName: "svc", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 8080}}}}}}}}}}}},
	}
	if withRoutes {
		res.Routes = []*route.RouteConfiguration{{Name: "routes", VirtualHosts: []*route.VirtualHost{{
			Name: "vh-" + tag, Domains: []string{"*"},
			Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "svc"}}}}}}}}}
	}
	return res
}

// serve starts s on a loopback port until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// adsStream is one ADS stream, state of the world or delta, as a proxy
// opens it: requests Req with a node on the first, responses Resp.
type adsStream[Req, Resp any] struct {
	t      *testing.T
	ads    grpc.BidiStreamingClient[Req, Resp]
	node   string
	first  bool
	cancel func()
	recv   chan *Resp
}

// stream is a state-of-the-world stream of the test proxy.
type stream = adsStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]

// deltaStream is a delta stream.
type deltaStream = adsStream[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]

func openStream(t *testing.T, addr string) *stream {
	return openADS(t, addr, testNode, func(ctx context.Context, c discovery.AggregatedDiscoveryServiceClient) (grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], error) {
		return c.StreamAggregatedResources(ctx)
	})
}

func openDelta(t *testing.T, addr, node string) *deltaStream {
	return openADS(t, addr, node, func(ctx context.Context, c discovery.AggregatedDiscoveryServiceClient) (grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse], error) {
		return c.DeltaAggregatedResources(ctx)
	})
}

func openADS[Req, Resp any](t *testing.T, addr, node string, open func(context.Context, discovery.AggregatedDiscoveryServiceClient) (grpc.BidiStreamingClient[Req, Resp], error)) *adsStream[Req, Resp] {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ads, err := open(ctx, discovery.NewAggregatedDiscoveryServiceClient(conn))
	if err != nil {
		t.Fatal(err)
	}
	st := &adsStream[Req, Resp]{t: t, ads: ads, node: node, first: true, recv: make(chan *Resp, 16)}
	st.cancel = func() { cancel(); conn.Close() }
	t.Cleanup(st.cancel)
	go func() {
		defer close(st.recv)
		for {
			resp, err := ads.Recv()
			if err != nil {
				return
			}
			st.recv <- resp
		}
	}()
	return st
}

// send sends a request; the first carries the node.
func (s *adsStream[Req, Resp]) send(req *Req) {
	s.t.Helper()
	if s.first {
		switch r := any(req).(type) {
		case *discovery.DiscoveryRequest:
			r.Node = &core.Node{Id: s.node}
		case *discovery.DeltaDiscoveryRequest:
			r.Node = &core.Node{Id: s.node}
		}
		s.first = false
	}
	if err := s.ads.Send(req); err != nil {
		s.t.Fatal(err)
	}
}

// next waits for the next response.
func (s *adsStream[Req, Resp]) next(what string) *Resp {
	s.t.Helper()
	select {
	case resp, ok := <-s.recv:
		if !ok {
			s.t.Fatalf("stream closed waiting for %s", what)
		}
		return resp
	case <-time.After(10 * time.Second):
		s.t.Fatalf("no response: %s", what)
	}
	return nil
}

// quiet reports an unexpected response within d.
func (s *adsStream[Req, Resp]) quiet(d time.Duration, what string) {
	s.t.Helper()
	select {
	case resp := <-s.recv:
		s.t.Errorf("%s: got a response %v", what, resp)
	case <-time.After(d):
	}
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
		time.Sleep(10 * time.Millisecond)
	}
}

func typeStatus(s *Server, typeURL string) (TypeStatus, error) {
	for _, p := range s.Status() {
		if p.ID != testNode {
			continue
		}
		for _, ts := range p.Types {
			if ts.TypeURL == typeURL {
				return ts, nil
			}
		}
		return TypeStatus{}, fmt.Errorf("no %s status yet", typeURL)
	}
	return TypeStatus{}, fmt.Errorf("proxy %s not connected", testNode)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
