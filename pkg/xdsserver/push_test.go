package xdsserver

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const otherNode = "sidecar~127.0.0.2~db.default~default.svc.cluster.local"

// subscribeAll opens CDS and EDS on a delta stream and ACKs both.
func subscribeAll(t *testing.T, st *deltaStream, eds []string) {
	t.Helper()
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	cds := st.next("CDS")
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: cds.Nonce})
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: eds})
	resp := st.next("EDS")
	if !slices.Equal(names(resp), eds) {
		t.Fatalf("first EDS: %v, want %v", names(resp), eds)
	}
	st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: resp.Nonce})
}

// An endpoint-only push regenerates and sends the EDS resources of the
// changed service to the proxies holding its clusters, and to nobody
// else: a proxy without them is not even generated for.
func TestEndpointOnlyPushReachesOnlyHolders(t *testing.T) {
	host := func(i int) string { return "svc" + string(rune('0'+i)) + ".default.svc.cluster.local" }
	name := func(i int) string { return xdsgen.ClusterName("outbound", 80, "", host(i)) }
	var port atomic.Uint32
	port.Store(8001)
	held := func(p *model.Proxy) []uint32 { // ports of svc0, svc1 for web; svc2 for db
		if p.ID == testNode {
			return []uint32{8000, port.Load()}
		}
		return []uint32{0, 0, 8002}
	}
	var endpointCalls sync.Map
	s := New(Options{
		Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
			res := meshResources(t, held(p))
			if p.ID != testNode { // db holds svc2 only
				res.Clusters, res.Endpoints = res.Clusters[2:], res.Endpoints[2:]
			}
			return res, 1, nil
		},
		Endpoints: func(p *model.Proxy, clusters []string) ([]*endpoint.ClusterLoadAssignment, uint64, error) {
			endpointCalls.Store(p.ID, clusters)
			var out []*endpoint.ClusterLoadAssignment
			for _, c := range clusters {
				if c == name(1) {
					out = append(out, cla(t, c, port.Load()))
				}
			}
			return out, 2, nil
		},
	})
	addr := serve(t, s)
	web, db := openDelta(t, addr, testNode), openDelta(t, addr, otherNode)
	subscribeAll(t, web, []string{name(0), name(1)})
	subscribeAll(t, db, []string{name(2)})

	port.Store(9001)
	if n, _ := s.PushAll(PushRequest{Start: time.Now(), EndpointsOnly: true, Hosts: map[string]struct{}{host(1): {}}}, nil); n != 2 {
		t.Fatalf("queued %d proxies, want 2 (the server filters by what they hold)", n)
	}
	resp := web.next("EDS of svc1")
	if resp.TypeUrl != resourcev3.EndpointType || !slices.Equal(names(resp), []string{name(1)}) {
		t.Fatalf("web got %s %v", resp.TypeUrl, names(resp))
	}
	web.quiet(200*time.Millisecond, "web: only EDS of svc1")
	db.quiet(100*time.Millisecond, "db holds no svc1 cluster")
	if _, called := endpointCalls.Load(otherNode); called {
		t.Errorf("endpoints generated for db, which holds none of svc1's clusters")
	}
	if got, _ := endpointCalls.Load(testNode); !slices.Equal(got.([]string), []string{name(1)}) {
		t.Errorf("endpoints generated for %v, want only svc1's cluster", got)
	}
	if v, _ := s.PushedVersion(testNode); v != 2 {
		t.Errorf("web's push version %d after the endpoint push of version 2", v)
	}
}

// Proxies whose generated config shares a message share its Resource: it
// is marshalled once, not once per proxy.
func TestSharedMessagesMarshalledOnce(t *testing.T) {
	shared := meshResources(t, []uint32{8000, 8001})
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		own := meshResources(t, []uint32{8000, 8001}) // equal content, own pointers for listeners
		own.Clusters, own.Endpoints, own.Routes = shared.Clusters, shared.Endpoints, shared.Routes
		return own, 1, nil
	}})
	connectBoth(t, s)
	waitSnapshots(t, s, testNode, otherNode)
	a, _ := s.Snapshot(testNode)
	b, _ := s.Snapshot(otherNode)
	for i := range a.types[cdsIdx].items {
		if a.types[cdsIdx].items[i] != b.types[cdsIdx].items[i] {
			t.Errorf("cluster %s: two Resources for one shared message", a.types[cdsIdx].items[i].Name)
		}
	}
	if a.types[ldsIdx].items[0] == b.types[ldsIdx].items[0] {
		t.Errorf("listeners generated per proxy share a Resource")
	}
	if a.types[ldsIdx].items[0].Version != b.types[ldsIdx].items[0].Version {
		t.Errorf("equal listeners have different versions")
	}
}

// The queue runs at most PushWorkers pushes at once, never two of one
// proxy at once, and merges the requests of a proxy that waits.
func TestPushQueueBoundedAndMerged(t *testing.T) {
	var running, peak atomic.Int32
	perProxy := sync.Map{}
	release := make(chan struct{})
	var done sync.WaitGroup
	q := newPushQueue(func(p *model.Proxy, req PushRequest) {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		c, _ := perProxy.LoadOrStore(p.ID, new(atomic.Int32))
		if c.(*atomic.Int32).Add(1) > 1 {
			t.Errorf("two pushes of %s at once", p.ID)
		}
		<-release
		c.(*atomic.Int32).Add(-1)
		running.Add(-1)
		done.Done()
	})
	ctx := t.Context()
	q.run(ctx, 3)
	proxies := make([]*model.Proxy, 10)
	for i := range proxies {
		proxies[i] = &model.Proxy{ID: "p" + string(rune('a'+i))}
	}
	done.Add(len(proxies))
	for _, p := range proxies {
		q.enqueue(p, PushRequest{EndpointsOnly: true, Hosts: map[string]struct{}{"a": {}}}, nil)
	}
	// A second request for a waiting proxy merges; a full one wins.
	q.enqueue(proxies[9], PushRequest{}, nil)
	q.mu.Lock()
	merged := q.pending[proxies[9].ID].req
	q.mu.Unlock()
	if merged.EndpointsOnly {
		t.Errorf("a full request merged into an endpoint-only one stayed endpoint-only")
	}
	time.Sleep(100 * time.Millisecond)
	if r := running.Load(); r != 3 {
		t.Errorf("%d pushes running, want the 3 workers busy", r)
	}
	close(release)
	done.Wait()
	if p := peak.Load(); p > 3 {
		t.Errorf("peak %d pushes at once with 3 workers", p)
	}
}

// Proxies whose generated lists start with the same shared view share
// one sorted list of Resources for it; a proxy's own entries after the
// view are merged in by name.
func TestViewListsShared(t *testing.T) {
	view := meshResources(t, []uint32{8000, 8001, 8002, 8003, 8004, 8005, 8006, 8007, 8008, 8009})
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		res := meshResources(t, nil)
		res.Clusters = append(res.Clusters, view.Clusters...)
		res.Endpoints = append(res.Endpoints, view.Endpoints...)
		res.ViewClusters, res.ViewEndpoints = len(view.Clusters), len(view.Endpoints)
		if p.ID == otherNode { // an inbound cluster of its own, sorting first
			own := testResources(t, "own", false).Clusters[0]
			own.Name = "inbound|9080||"
			own.ClusterDiscoveryType = nil
			res.Clusters = append(res.Clusters, own)
		}
		return res, 1, nil
	}})
	connectBoth(t, s)
	waitSnapshots(t, s, testNode, otherNode)
	a, _ := s.Snapshot(testNode)
	b, _ := s.Snapshot(otherNode)
	if &a.types[edsIdx].items[0] != &b.types[edsIdx].items[0] {
		t.Errorf("the EDS lists of one view are not one list")
	}
	if n := len(b.types[cdsIdx].items); n != len(view.Clusters)+1 || b.types[cdsIdx].items[0].Name != "inbound|9080||" {
		t.Fatalf("the own cluster is not merged in first: %d clusters, first %s", n, b.types[cdsIdx].items[0].Name)
	}
	for i, r := range a.types[cdsIdx].items {
		if b.types[cdsIdx].items[i+1] != r {
			t.Errorf("cluster %s: not the shared Resource", r.Name)
		}
	}
	want, err := NewSnapshot(&xdsgen.Resources{Clusters: view.Clusters, Endpoints: view.Endpoints})
	if err != nil {
		t.Fatal(err)
	}
	if a.GetVersion(resourcev3.ClusterType) != want.GetVersion(resourcev3.ClusterType) {
		t.Errorf("a shared list's version differs from the same list built alone")
	}
}

// connectBoth connects the test proxy and another on delta streams, each
// with its first CDS answered.
func connectBoth(t *testing.T, s *Server) {
	t.Helper()
	addr := serve(t, s)
	for _, node := range []string{testNode, otherNode} {
		st := openDelta(t, addr, node)
		st.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
		st.next("CDS")
	}
}

// waitSnapshots waits until every node has a published snapshot.
func waitSnapshots(t *testing.T, s *Server, nodes ...string) {
	t.Helper()
	eventually(t, "snapshots of "+strings.Join(nodes, ", "), func() error {
		for _, n := range nodes {
			if _, err := s.Snapshot(n); err != nil {
				return err
			}
		}
		return nil
	})
}
