package xdsserver

import (
	"slices"
	"sync"
	"testing"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// vhostMesh is testResources with the route configuration "routes"
// holding one virtual host per entry of prefixes (named vh-<key>, each
// routing its prefix to svc).
func vhostMesh(t testing.TB, prefixes map[string]string) *xdsgen.Resources {
	res := testResources(t, "x", true)
	rc := res.Routes[0]
	rc.VirtualHosts = nil
	keys := make([]string, 0, len(prefixes))
	for k := range prefixes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{Name: "vh-" + k, Domains: []string{k + ".example"},
			Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: prefixes[k]}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "svc"}}}}}})
	}
	return res
}

// decodeRoute and decodeVHost parse one delta resource, checking what
// Envoy checks of it (ValidateAll).
func decodeRoute(t *testing.T, r *discovery.Resource) *route.RouteConfiguration {
	t.Helper()
	rc := &route.RouteConfiguration{}
	if err := r.GetResource().UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	if err := rc.ValidateAll(); err != nil {
		t.Fatalf("route configuration %q: %v", r.Name, err)
	}
	return rc
}

func decodeVHost(t *testing.T, r *discovery.Resource) *route.VirtualHost {
	t.Helper()
	vh := &route.VirtualHost{}
	if err := r.GetResource().UnmarshalTo(vh); err != nil {
		t.Fatal(err)
	}
	if err := vh.ValidateAll(); err != nil {
		t.Fatalf("virtual host %q: %v", r.Name, err)
	}
	if vh.Name != r.Name {
		t.Fatalf("virtual host resource %q holds a vhost named %q: Envoy keys and removes VHDS vhosts by their name", r.Name, vh.Name)
	}
	return vh
}

// A delta stream gets its route configuration without virtual hosts and
// with vhds, and each virtual host as a VirtualHost resource under the
// route configuration's name; a change to one virtual host sends that one
// and no route configuration; a virtual host gone is removed by name; a
// SotW stream keeps getting the table whole and is not served VHDS.
func TestVHDSSendsOnlyTheChangedVirtualHost(t *testing.T) {
	var mu sync.Mutex
	prefixes := map[string]string{"a": "/a", "b": "/b", "c": "/c"}
	version := uint64(1)
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		return vhostMesh(t, prefixes), version, nil
	}})
	addr := serve(t, s)
	st := openDelta(t, addr, testNode)
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: []string{"routes"}})
	rds := st.next("RDS")
	if rds.TypeUrl != resourcev3.RouteType || len(rds.Resources) != 1 {
		t.Fatalf("RDS: %s %v", rds.TypeUrl, names(rds))
	}
	if rc := decodeRoute(t, rds.Resources[0]); rc.GetVhds().GetConfigSource().GetAds() == nil || len(rc.VirtualHosts) != 0 {
		t.Fatalf("route configuration in VHDS form: vhds %v, %d virtual hosts", rc.GetVhds(), len(rc.VirtualHosts))
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResponseNonce: rds.Nonce})
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.VirtualHostType, ResourceNamesSubscribe: []string{"routes"}})
	vhds := st.next("VHDS")
	if want := []string{"routes/vh-a", "routes/vh-b", "routes/vh-c"}; vhds.TypeUrl != resourcev3.VirtualHostType || !slices.Equal(names(vhds), want) {
		t.Fatalf("VHDS: %s %v, want %v", vhds.TypeUrl, names(vhds), want)
	}
	for _, r := range vhds.Resources {
		decodeVHost(t, r)
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.VirtualHostType, ResponseNonce: vhds.Nonce})

	// One virtual host's routes change: that virtual host alone.
	mu.Lock()
	prefixes["b"], version = "/b2", 2
	mu.Unlock()
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	up := st.next("VHDS after one virtual host changed")
	if up.TypeUrl != resourcev3.VirtualHostType || !slices.Equal(names(up), []string{"routes/vh-b"}) || len(up.RemovedResources) != 0 {
		t.Fatalf("update: %s %v removed %v", up.TypeUrl, names(up), up.RemovedResources)
	}
	if got := decodeVHost(t, up.Resources[0]).Routes[0].Match.GetPrefix(); got != "/b2" {
		t.Fatalf("updated virtual host routes %q", got)
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.VirtualHostType, ResponseNonce: up.Nonce})
	st.quiet(200*time.Millisecond, "the route configuration did not change")

	// A virtual host goes: removed by its resource name.
	mu.Lock()
	delete(prefixes, "c")
	version = 3
	mu.Unlock()
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	gone := st.next("VHDS after a virtual host went")
	if len(gone.Resources) != 0 || !slices.Equal(gone.RemovedResources, []string{"routes/vh-c"}) {
		t.Fatalf("removal: %v removed %v", names(gone), gone.RemovedResources)
	}

	// A subscription to a route configuration with no virtual hosts is
	// answered (empty): a proxy waits for the first answer.
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.VirtualHostType, ResponseNonce: gone.Nonce,
		ResourceNamesSubscribe: []string{"nothing"}})
	if empty := st.next("VHDS for an empty namespace"); len(empty.Resources) != 0 || len(empty.RemovedResources) != 0 {
		t.Fatalf("empty namespace: %v removed %v", names(empty), empty.RemovedResources)
	}

	// SotW: the table whole; VirtualHost requests are not served.
	sotw := openStream(t, addr)
	sotw.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.VirtualHostType, ResourceNames: []string{"routes"}})
	sotw.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: []string{"routes"}})
	whole := sotw.next("SotW RDS")
	rc := &route.RouteConfiguration{}
	if whole.TypeUrl != resourcev3.RouteType || len(whole.Resources) != 1 {
		t.Fatalf("SotW: %s with %d resources", whole.TypeUrl, len(whole.Resources))
	}
	if err := whole.Resources[0].UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	if rc.Vhds != nil || len(rc.VirtualHosts) != 2 || rc.VirtualHosts[0].Name != "vh-a" {
		t.Fatalf("SotW route configuration: vhds %v, virtual hosts %v", rc.Vhds, rc.VirtualHosts)
	}
	sotw.quiet(200*time.Millisecond, "no VirtualHost response on SotW")
}

// With DisableVHDS a delta stream gets route configurations whole.
func TestVHDSDisabled(t *testing.T) {
	s := New(Options{DisableVHDS: true, Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		return vhostMesh(t, map[string]string{"a": "/a"}), 1, nil
	}})
	st := openDelta(t, serve(t, s), testNode)
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: []string{"routes"}})
	rds := st.next("RDS")
	if rc := decodeRoute(t, rds.Resources[0]); rc.Vhds != nil || len(rc.VirtualHosts) != 1 {
		t.Fatalf("route configuration: vhds %v, %d virtual hosts", rc.Vhds, len(rc.VirtualHosts))
	}
}

// Proxies with the same route configurations share one split of them.
func TestVHDSSplitShared(t *testing.T) {
	c := newVHDSCache()
	res := vhostMesh(t, map[string]string{"a": "/a", "b": "/b"})
	m := newMarshalCache()
	mk := func() *Snapshot {
		snap, err := buildSnapshot(res, snapshotOptions{resource: func(r types.Resource) (*Resource, error) { return m.get(r, 1) },
			vhds: c, version: 1})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	one, two := mk(), mk()
	if &one.types[vhdsIdx].items[0] != &two.types[vhdsIdx].items[0] || one.vhdsRoutes.items[0] != two.vhdsRoutes.items[0] {
		t.Fatal("two proxies with the same route configurations hold separate VHDS lists")
	}
}
