package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
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
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const testNode = "sidecar~127.0.0.1~web.default~default.svc.cluster.local"

// world is what the test control plane serves: one listener (HCM over
// RDS route), that route config, and EDS clusters with their endpoints:
// cluster name -> endpoint port. Each cluster's alt_stat_name is its tag
// (tags[name], default "one"); padding makes every cluster that many
// bytes bigger.
type world struct {
	route    string
	clusters map[string]uint32
	tags     map[string]string
	padding  int
	// vhds: the route configuration has VHDS over ADS.
	vhds bool
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

func (w world) snapshot(t testing.TB, version int) *cachev3.Snapshot {
	t.Helper()
	manager := &hcm.HttpConnectionManager{StatPrefix: "in",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: w.route, ConfigSource: adsSource()}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}}}
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {&listener.Listener{Name: "l", Address: socket(15001),
			FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: anyOf(t, manager)}}}}}}},
		resourcev3.RouteType: {&route.RouteConfiguration{Name: w.route, VirtualHosts: []*route.VirtualHost{{
			Name: "vh", Domains: []string{"*"},
			Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "svc"}}}}}}}}},
	}
	if w.vhds {
		res[resourcev3.RouteType][0].(*route.RouteConfiguration).Vhds = &route.Vhds{ConfigSource: adsSource()}
	}
	for name, port := range w.clusters {
		tag := w.tags[name]
		if tag == "" {
			tag = "one"
		}
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], &cluster.Cluster{Name: name, AltStatName: tag,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
			Metadata:             padding(w.padding)})
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{
				Endpoint: &endpoint.Endpoint{Address: socket(port)}}}}}}})
	}
	snap, err := cachev3.NewSnapshot(fmt.Sprint(version), res)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// padding is filter metadata of n bytes (nil for 0).
func padding(n int) *core.Metadata {
	if n == 0 {
		return nil
	}
	return &core.Metadata{FilterMetadata: map[string]*structpb.Struct{"pad": {Fields: map[string]*structpb.Value{
		"p": structpb.NewStringValue(strings.Repeat("p", n))}}}}
}

// sent is one response the control plane sent, in short.
type sent struct {
	typeURL, nonce string
	names, removed []string
}

// controlPlane is go-control-plane's own xDS server (SotW and Delta) over
// a snapshot cache, on loopback, recording what goes over the wire.
type controlPlane struct {
	t       *testing.T
	cache   cachev3.SnapshotCache
	addr    string
	stop    func()
	version int

	mu        sync.Mutex
	deltaReqs []*discovery.DeltaDiscoveryRequest
	deltaSent []sent
	sotwReqs  []*discovery.DiscoveryRequest
}

// serverOpts: sotwOnly registers an ADS server whose Delta is
// Unimplemented (grpc's generated UnimplementedAggregatedDiscoveryServiceServer).
type serverOpts struct{ sotwOnly bool }

type sotwOnlyADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	sotw serverv3.Server
}

func (s sotwOnlyADS) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return s.sotw.StreamAggregatedResources(st)
}

func startControlPlane(t *testing.T, addr string, w world, so serverOpts) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)}
	cp.set(w)
	ctx, cancel := context.WithCancel(context.Background())
	xds := serverv3.NewServer(ctx, cp.cache, serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discovery.DiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.sotwReqs = append(cp.sotwReqs, proto.Clone(r).(*discovery.DiscoveryRequest))
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discovery.DeltaDiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.deltaReqs = append(cp.deltaReqs, proto.Clone(r).(*discovery.DeltaDiscoveryRequest))
			return nil
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
			s := sent{typeURL: r.TypeUrl, nonce: r.Nonce, removed: append([]string(nil), r.RemovedResources...)}
			for _, res := range r.Resources {
				s.names = append(s.names, res.Name)
			}
			sort.Strings(s.names)
			sort.Strings(s.removed)
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.deltaSent = append(cp.deltaSent, s)
		},
	})
	gs := grpc.NewServer()
	if so.sotwOnly {
		discovery.RegisterAggregatedDiscoveryServiceServer(gs, sotwOnlyADS{sotw: xds})
	} else {
		discovery.RegisterAggregatedDiscoveryServiceServer(gs, xds)
	}
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	var once sync.Once
	cp.stop = func() { once.Do(func() { cancel(); gs.Stop(); <-done }) }
	t.Cleanup(cp.stop)
	return cp
}

// set serves w from now on.
func (cp *controlPlane) set(w world) {
	cp.t.Helper()
	cp.version++
	if err := cp.cache.SetSnapshot(context.Background(), testNode, w.snapshot(cp.t, cp.version)); err != nil {
		cp.t.Fatal(err)
	}
}

// sentSince returns the delta responses sent after the first n.
func (cp *controlPlane) sentSince(n int) []sent {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]sent(nil), cp.deltaSent[n:]...)
}

func (cp *controlPlane) sotwRequests() []*discovery.DiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]*discovery.DiscoveryRequest(nil), cp.sotwReqs...)
}

func (cp *controlPlane) requests() []*discovery.DeltaDiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]*discovery.DeltaDiscoveryRequest(nil), cp.deltaReqs...)
}

// allAcked waits until every delta response sent was answered with an
// ACK (a request with its nonce and no error), and returns how many were
// sent.
func (cp *controlPlane) allAcked(t *testing.T) int {
	t.Helper()
	var n int
	eventually(t, "every response ACKed", func() error {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		acked := map[string]bool{}
		for _, r := range cp.deltaReqs {
			if r.ResponseNonce != "" && r.ErrorDetail == nil {
				acked[r.ResponseNonce] = true
			}
		}
		for _, s := range cp.deltaSent {
			if !acked[s.nonce] {
				return fmt.Errorf("response %s (%s) not ACKed", s.nonce, s.typeURL)
			}
		}
		if len(cp.deltaSent) == 0 {
			return errors.New("nothing sent yet")
		}
		n = len(cp.deltaSent)
		return nil
	})
	return n
}

// proxy is the client side: it accepts every view unless a cluster is
// tagged "bad", and keeps the views it accepted.
type proxy struct {
	mu       sync.Mutex
	accepted []Resources
}

// apply compiles nothing but does what a compiler must: names the EDS
// and RDS resources the view refers to, and rejects what it cannot honour.
func (p *proxy) apply(r Resources) (Dependencies, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var deps Dependencies
	for _, m := range r.Items[ClusterType] {
		c := m.(*cluster.Cluster)
		if c.AltStatName == "bad" {
			return Dependencies{}, fmt.Errorf("cluster %s: alt_stat_name bad is not honoured", c.Name)
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

// describe is a view in short: route names, then each cluster's tag and
// endpoint port, in name order.
func describe(r Resources) string {
	var routes []string
	for name := range r.Items[RouteType] {
		routes = append(routes, name)
	}
	names := map[string]bool{}
	for name := range r.Items[ClusterType] {
		names[name] = true
	}
	for name := range r.Items[EndpointType] {
		names[name] = true
	}
	var clusters []string
	for _, name := range slices.Sorted(maps.Keys(names)) {
		tag := "-"
		if c, ok := r.Items[ClusterType][name].(*cluster.Cluster); ok {
			tag = c.AltStatName
		}
		var port uint32
		if e, ok := r.Items[EndpointType][name].(*endpoint.ClusterLoadAssignment); ok {
			port = e.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().GetPortValue()
		}
		clusters = append(clusters, fmt.Sprintf("%s=%s:%d", name, tag, port))
	}
	sort.Strings(routes)
	return fmt.Sprintf("routes=%s %s", strings.Join(routes, ","), strings.Join(clusters, " "))
}

func startClient(t *testing.T, opts Options) (*proxy, *Client) {
	p := &proxy{}
	return p, startClientWith(t, opts, p.apply)
}

// startClientWith runs a client compiling with apply until the test ends.
func startClientWith(t *testing.T, opts Options, apply func(Resources) (Dependencies, error)) *Client {
	opts.Node = &core.Node{Id: testNode}
	opts.Apply = apply
	c := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
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

func twoClusters(route string, port1, port2 uint32) world {
	return world{route: route, clusters: map[string]uint32{"svc": port1, "svc2": port2}}
}
