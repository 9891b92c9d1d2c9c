package xdsclient

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The first Delta requests: node on the stream's first only, CDS and LDS
// wildcard (no names), EDS and RDS by the names accepted clusters and
// listeners give; every response is ACKed and the view is complete.
func TestDeltaInitialSync(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	p, c := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080 svc2=one:8081")
	cp.allAcked(t)
	if c.Protocol() != ProtocolDelta {
		t.Errorf("protocol %s, want delta", c.Protocol())
	}
	firstOfType := map[string]int{}
	for i, r := range cp.requests() {
		if (r.Node != nil) != (i == 0) {
			t.Errorf("request %d (%s): node set %v; only the stream's first carries it", i, r.TypeUrl, r.Node != nil)
		}
		if _, ok := firstOfType[r.TypeUrl]; ok {
			continue
		}
		firstOfType[r.TypeUrl] = i
		var want []string
		switch r.TypeUrl {
		case EndpointType:
			want = []string{"svc", "svc2"}
		case RouteType:
			want = []string{"r1"}
		}
		if !slices.Equal(r.ResourceNamesSubscribe, want) {
			t.Errorf("first %s request subscribes %v, want %v", r.TypeUrl, r.ResourceNamesSubscribe, want)
		}
	}
	if len(firstOfType) != 4 {
		t.Errorf("requests for %d types, want 4: %v", len(firstOfType), firstOfType)
	}
	if v := p.last().Versions[ClusterType]; v != "1" {
		t.Errorf("CDS version %q, want the system_version_info 1", v)
	}
}

// An endpoint change is one EDS response carrying that one resource; the
// client's view takes it and keeps every other resource.
func TestDeltaEndpointOnlyChange(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080 svc2=one:8081")
	n := cp.allAcked(t)
	before := p.last()

	cp.set(twoClusters("r1", 9090, 8081))
	wantView(t, p, "the endpoint change", "routes=r1 svc=one:9090 svc2=one:8081")
	cp.allAcked(t)
	got := cp.sentSince(n)
	want := []sent{{typeURL: EndpointType, names: []string{"svc"}}}
	if len(got) != 1 || got[0].typeURL != want[0].typeURL || !reflect.DeepEqual(got[0].names, want[0].names) || len(got[0].removed) != 0 {
		t.Fatalf("after an endpoint change the control plane sent %+v, want only %+v", got, want)
	}
	after := p.last()
	if after.Items[EndpointType]["svc2"] != before.Items[EndpointType]["svc2"] {
		t.Error("the unchanged endpoints svc2 were replaced, not kept")
	}
	// Types the response did not carry are the very maps of the view
	// before: nothing was copied for them.
	if reflect.ValueOf(after.Items[ClusterType]).Pointer() != reflect.ValueOf(before.Items[ClusterType]).Pointer() {
		t.Error("the clusters' map was copied for an EDS response")
	}
}

// A removed cluster comes as removed_resources; the client drops it,
// unsubscribes from its endpoints and forgets them.
func TestDeltaRemoval(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080 svc2=one:8081")
	n := cp.allAcked(t)

	cp.set(world{route: "r1", clusters: map[string]uint32{"svc": 8080}})
	wantView(t, p, "the removal", "routes=r1 svc=one:8080")
	cp.allAcked(t)
	var removedCDS bool
	for _, s := range cp.sentSince(n) {
		if s.typeURL == ClusterType && slices.Equal(s.removed, []string{"svc2"}) && len(s.names) == 0 {
			removedCDS = true
		}
	}
	if !removedCDS {
		t.Errorf("no CDS response removing svc2 alone: %+v", cp.sentSince(n))
	}
	var unsubscribed bool
	for _, r := range cp.requests() {
		if r.TypeUrl == EndpointType && slices.Equal(r.ResourceNamesUnsubscribe, []string{"svc2"}) {
			unsubscribed = true
		}
	}
	if !unsubscribed {
		t.Error("the client did not unsubscribe from the endpoints of svc2")
	}
}

// A response the compiler rejects is NACKed with its reason; the last good
// view stays, later updates build on it, and a fix is ACKed.
func TestDeltaNackKeepsLastGood(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080 svc2=one:8081")
	cp.allAcked(t)

	bad := twoClusters("r1", 8080, 8081)
	bad.tags = map[string]string{"svc": "bad"}
	cp.set(bad)
	eventually(t, "the NACK", func() error {
		for _, r := range cp.requests() {
			if r.TypeUrl == ClusterType && r.ErrorDetail.GetMessage() == "cluster svc: alt_stat_name bad is not honoured" && r.ResponseNonce != "" {
				return nil
			}
		}
		return fmt.Errorf("no CDS NACK among %d requests", len(cp.requests()))
	})
	time.Sleep(100 * time.Millisecond)
	if got := describe(p.last()); got != "routes=r1 svc=one:8080 svc2=one:8081" {
		t.Errorf("after the NACK the accepted view is %q", got)
	}

	// An endpoint change applies on top of the last good clusters.
	bad.clusters = map[string]uint32{"svc": 9090, "svc2": 8081}
	cp.set(bad)
	wantView(t, p, "the endpoint change", "routes=r1 svc=one:9090 svc2=one:8081")

	fixed := twoClusters("r1", 9090, 8081)
	fixed.tags = map[string]string{"svc": "two"}
	n := len(cp.sentSince(0))
	cp.set(fixed)
	wantView(t, p, "the fixed cluster", "routes=r1 svc=two:9090 svc2=one:8081")
	eventually(t, "the fix ACKed", func() error {
		for _, s := range cp.sentSince(n) {
			for _, r := range cp.requests() {
				if r.ResponseNonce == s.nonce && r.ErrorDetail == nil {
					return nil
				}
			}
		}
		return fmt.Errorf("no ACK of %+v", cp.sentSince(n))
	})
}

// When the control plane goes away the view stays in force; the client
// reconnects announcing what it holds (initial_resource_versions), so the
// new control plane sends only what differs.
func TestDeltaReconnectSendsInitialVersions(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	addr := cp.addr
	p, _ := startClient(t, Options{Address: addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080 svc2=one:8081")
	cp.allAcked(t)
	cp.stop()
	time.Sleep(300 * time.Millisecond)
	if got := describe(p.last()); got != "routes=r1 svc=one:8080 svc2=one:8081" {
		t.Errorf("while disconnected the accepted view is %q", got)
	}

	w := twoClusters("r1", 8080, 9091)
	w.tags = map[string]string{"svc": "two"}
	cp2 := startControlPlane(t, addr, w, serverOpts{})
	wantView(t, p, "the new control plane's config", "routes=r1 svc=two:8080 svc2=one:9091")
	cp2.allAcked(t)
	for _, r := range cp2.requests() {
		if r.ResponseNonce != "" {
			continue
		}
		var want []string
		switch r.TypeUrl {
		case ClusterType, EndpointType:
			want = []string{"svc", "svc2"}
		case ListenerType:
			want = []string{"l"}
		case RouteType:
			want = []string{"r1"}
		}
		var got []string
		for name := range r.InitialResourceVersions {
			got = append(got, name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: initial_resource_versions for %v, want %v", r.TypeUrl, got, want)
		}
	}
	// Only the changed cluster and endpoints came again: not the listener
	// or the route, nor the unchanged svc cluster's endpoints.
	for _, s := range cp2.sentSince(0) {
		var want []string
		switch s.typeURL {
		case ClusterType:
			want = []string{"svc"}
		case EndpointType:
			want = []string{"svc2"}
		}
		if !slices.Equal(s.names, want) {
			t.Errorf("after the reconnect %s sent %v, want %v", s.typeURL, s.names, want)
		}
	}
}

// A listener naming another route config and a new cluster: the client
// subscribes to the new names and unsubscribes from the old one in one
// request per type, and its view holds only what is subscribed.
func TestDeltaFollowsNewNames(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", world{route: "r1", clusters: map[string]uint32{"svc": 8080}}, serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view", "routes=r1 svc=one:8080")
	cp.allAcked(t)
	n := len(cp.requests())

	cp.set(twoClusters("r2", 8080, 8081))
	wantView(t, p, "the new route and cluster", "routes=r2 svc=one:8080 svc2=one:8081")
	cp.allAcked(t)
	var rds, eds bool
	for _, r := range cp.requests()[n:] {
		switch {
		case r.TypeUrl == RouteType && slices.Equal(r.ResourceNamesSubscribe, []string{"r2"}) &&
			slices.Equal(r.ResourceNamesUnsubscribe, []string{"r1"}):
			rds = true
		case r.TypeUrl == EndpointType && slices.Equal(r.ResourceNamesSubscribe, []string{"svc2"}) && len(r.ResourceNamesUnsubscribe) == 0:
			eds = true
		}
	}
	if !rds || !eds {
		t.Errorf("subscription changes: RDS r1->r2 %v, EDS +svc2 %v", rds, eds)
	}
}
