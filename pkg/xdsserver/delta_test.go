package xdsserver

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

func names(resp *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range resp.Resources {
		out = append(out, r.Name)
	}
	slices.Sort(out)
	return out
}

// meshResources is n EDS clusters c0..c(n-1) with one endpoint each on
// port ports[i], one listener and its route config.
func meshResources(t testing.TB, ports []uint32) *xdsgen.Resources {
	res := testResources(t, "x", true)
	res.Clusters = res.Clusters[:0]
	res.Endpoints = res.Endpoints[:0]
	for i, port := range ports {
		name := xdsgen.ClusterName("outbound", 80, "", "svc"+strconv.Itoa(i)+".default.svc.cluster.local")
		c := testResources(t, "x", true).Clusters[0]
		c.Name = name
		res.Clusters = append(res.Clusters, c)
		res.Endpoints = append(res.Endpoints, cla(t, name, port))
	}
	return res
}

func cla(t testing.TB, name string, port uint32) *endpoint.ClusterLoadAssignment {
	e := testResources(t, "x", false).Endpoints[0]
	e.ClusterName = name
	e.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress().PortSpecifier =
		&core.SocketAddress_PortValue{PortValue: port}
	return e
}

// Delta: the first responses carry everything; a change of one cluster's
// endpoints sends that one ClusterLoadAssignment only; a cluster gone is
// named in removed_resources; a NACK is booked and not answered.
func TestDeltaSendsOnlyWhatChanged(t *testing.T) {
	ports := []uint32{8000, 8001, 8002}
	var version atomic.Uint64
	version.Store(1)
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		return meshResources(t, ports), version.Load(), nil
	}})
	st := openDelta(t, serve(t, s), testNode)
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	cds := st.next("CDS")
	if cds.TypeUrl != resourcev3.ClusterType || len(cds.Resources) != 3 || cds.SystemVersionInfo == "" {
		t.Fatalf("first CDS: %s %v", cds.TypeUrl, names(cds))
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.Nonce})
	all := []string{xdsgen.ClusterName("outbound", 80, "", "svc0.default.svc.cluster.local"),
		xdsgen.ClusterName("outbound", 80, "", "svc1.default.svc.cluster.local"),
		xdsgen.ClusterName("outbound", 80, "", "svc2.default.svc.cluster.local")}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: all})
	eds := st.next("EDS")
	if got := names(eds); !slices.Equal(got, all) {
		t.Fatalf("first EDS: %v", got)
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: eds.Nonce})

	// One endpoint moves: only its ClusterLoadAssignment is sent.
	ports[1] = 9001
	version.Store(2)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	eds2 := st.next("EDS after one endpoint moved")
	if eds2.TypeUrl != resourcev3.EndpointType || !slices.Equal(names(eds2), all[1:2]) || len(eds2.RemovedResources) != 0 {
		t.Fatalf("EDS update: %s %v removed %v", eds2.TypeUrl, names(eds2), eds2.RemovedResources)
	}
	st.quiet(200*time.Millisecond, "nothing else changed")

	// A NACK is booked, and the rejected version is not sent again.
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: eds2.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "endpoints: not acceptable"}})
	eventually(t, "the NACK to be booked", func() error {
		ts, err := typeStatus(s, resourcev3.EndpointType)
		if err == nil && ts.Nack != "endpoints: not acceptable" {
			err = errorf("status %+v", ts)
		}
		return err
	})
	st.quiet(200*time.Millisecond, "after a NACK")

	// A cluster goes: CDS and EDS name it as removed.
	ports = ports[:2]
	version.Store(3)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	cds3 := st.next("CDS after a cluster went")
	if cds3.TypeUrl != resourcev3.ClusterType || len(cds3.Resources) != 0 || !slices.Equal(cds3.RemovedResources, all[2:]) {
		t.Fatalf("CDS removal: %s %v removed %v", cds3.TypeUrl, names(cds3), cds3.RemovedResources)
	}
	eds3 := st.next("EDS after a cluster went")
	if eds3.TypeUrl != resourcev3.EndpointType || !slices.Equal(eds3.RemovedResources, all[2:]) {
		t.Fatalf("EDS removal: %s %v removed %v", eds3.TypeUrl, names(eds3), eds3.RemovedResources)
	}
}

// A reconnecting proxy names what it holds in initial_resource_versions:
// only what differs is sent.
func TestDeltaReconnectSendsOnlyTheDifference(t *testing.T) {
	ports := []uint32{8000, 8001}
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		return meshResources(t, ports), 1, nil
	}})
	addr := serve(t, s)
	st := openDelta(t, addr, testNode)
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	cds := st.next("CDS")
	held := map[string]string{}
	for _, r := range cds.Resources {
		held[r.Name] = r.Version
	}
	st.cancel()

	c1 := xdsgen.ClusterName("outbound", 80, "", "svc1.default.svc.cluster.local")
	held[c1] = "stale"
	held["outbound|80||gone.default.svc.cluster.local"] = "v"
	again := openDelta(t, addr, testNode)
	again.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, InitialResourceVersions: held})
	resp := again.next("CDS after reconnect")
	if !slices.Equal(names(resp), []string{c1}) || !slices.Equal(resp.RemovedResources, []string{"outbound|80||gone.default.svc.cluster.local"}) {
		t.Fatalf("after reconnect: sent %v, removed %v", names(resp), resp.RemovedResources)
	}
}

// Proxies subscribing the same names share one interned list.
func TestSubscriptionNamesShared(t *testing.T) {
	var names []string
	for i := range 50 {
		names = append(names, xdsgen.ClusterName("outbound", 80, "", "svc"+strconv.Itoa(i)+".default.svc.cluster.local"))
	}
	var a, b watch
	a.subscribe(slices.Clone(names), nil, nil)
	b.subscribe(slices.Clone(names), nil, nil)
	if &a.names[0] != &b.names[0] {
		t.Fatal("two watches with the same names hold separate lists")
	}
	b.subscribe([]string{"extra"}, nil, nil)
	if len(a.names) != 50 || slices.Contains(a.names, "extra") {
		t.Fatal("a subscription change of one watch changed another's names")
	}
}
