package xdsserver

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// taggedServer generates testResources tagged with the current value of
// version, and reports that version.
func taggedServer(t *testing.T, version *atomic.Uint64) *Server {
	return New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		v := version.Load()
		return testResources(t, strconv.FormatUint(v, 10), true), v, nil
	}})
}

func proxyOf(t *testing.T, s *Server) *model.Proxy {
	t.Helper()
	for _, p := range s.Proxies() {
		if p.ID == testNode {
			return p
		}
	}
	t.Fatalf("proxy %s not connected", testNode)
	return nil
}

// publishedTag is the tag of the cluster published for the test proxy.
func publishedTag(t *testing.T, s *Server) string {
	t.Helper()
	snap, err := s.Snapshot(testNode)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := snap.GetResources(resourcev3.ClusterType)["svc"].(*cluster.Cluster)
	if !ok {
		t.Fatalf("no cluster svc in the snapshot")
	}
	return c.AltStatName
}

// ACKs and NACKs are booked per type; a NACKed version is not sent again
// (no loop) and the next change is.
func TestAckNackBookkeeping(t *testing.T) {
	var version atomic.Uint64
	version.Store(1)
	s := taggedServer(t, &version)
	st := openStream(t, serve(t, s))

	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	v1 := st.next("the first CDS response")
	if v1.TypeUrl != resourcev3.ClusterType || len(v1.Resources) != 1 {
		t.Fatalf("first response: %s with %d resources", v1.TypeUrl, len(v1.Resources))
	}
	if ts, err := typeStatus(s, resourcev3.ClusterType); err != nil || ts.SentVersion != v1.VersionInfo || ts.AckedVersion != "" {
		t.Errorf("after sending: %+v %v", ts, err)
	}
	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: v1.VersionInfo, ResponseNonce: v1.Nonce})
	eventually(t, "the ACK to be booked", func() error {
		ts, err := typeStatus(s, resourcev3.ClusterType)
		if err == nil && ts.AckedVersion != v1.VersionInfo {
			err = fmt.Errorf("acked %q", ts.AckedVersion)
		}
		return err
	})

	// A new version, NACKed: booked with its message, and not sent again.
	version.Store(2)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	v2 := st.next("the second CDS response")
	if v2.VersionInfo == v1.VersionInfo {
		t.Fatalf("same version %s pushed again", v2.VersionInfo)
	}
	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: v1.VersionInfo, ResponseNonce: v2.Nonce,
		ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster svc: not acceptable"}})
	eventually(t, "the NACK to be booked", func() error {
		ts, err := typeStatus(s, resourcev3.ClusterType)
		if err == nil && (ts.Nack != "cluster svc: not acceptable" || ts.NackVersion != v2.VersionInfo || ts.AckedVersion != v1.VersionInfo) {
			err = fmt.Errorf("status %+v", ts)
		}
		return err
	})
	st.quiet(500*time.Millisecond, "after a NACK the rejected version must not be sent again")

	// The next change is sent, and its ACK clears the NACK.
	version.Store(3)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	v3 := st.next("the third CDS response")
	if v3.VersionInfo == v2.VersionInfo || v3.VersionInfo == v1.VersionInfo {
		t.Fatalf("version %s is not new", v3.VersionInfo)
	}
	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: v3.VersionInfo, ResponseNonce: v3.Nonce})
	eventually(t, "the ACK to clear the NACK", func() error {
		ts, err := typeStatus(s, resourcev3.ClusterType)
		if err == nil && (ts.Nack != "" || ts.AckedVersion != v3.VersionInfo) {
			err = fmt.Errorf("status %+v", ts)
		}
		return err
	})
	st.quiet(200*time.Millisecond, "after an ACK")
}

// The connect path (a new stream for a known proxy generates its config)
// and the rebuild path (Push after a new push context) race; whatever the
// interleaving, the snapshot left is the newest.
func TestPushOrderingConnectVsRebuild(t *testing.T) {
	var version atomic.Uint64
	version.Store(1)
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		v := version.Load()
		// Generation takes a while, so pushes overlap if not serialised.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		return testResources(t, strconv.FormatUint(v, 10), true), v, nil
	}})
	addr := serve(t, s)
	keep := openStream(t, addr) // keeps the proxy connected throughout
	keep.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	keep.next("the first CDS response")
	p := proxyOf(t, s)

	for round := 0; round < 50; round++ {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // rebuild: a new push context, then push
			defer wg.Done()
			// Land the new version while the connect path generates.
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			version.Add(1)
			if err := s.Push(p); err != nil {
				t.Error(err)
			}
		}()
		go func() { // connect: a second stream of the same proxy
			defer wg.Done()
			st := openStream(t, addr)
			st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
			st.next("CDS on a new stream")
			st.cancel()
		}()
		wg.Wait()
		want := version.Load()
		if got, ok := s.PushedVersion(testNode); !ok || got != want {
			t.Fatalf("round %d: published version %d, want the newest %d", round, got, want)
		}
		if tag := publishedTag(t, s); tag != "svc-"+strconv.FormatUint(want, 10) {
			t.Fatalf("round %d: published content %s, want version %d", round, tag, want)
		}
	}
}

// A push made from an older push context never replaces a newer one.
func TestOlderPushNeverReplacesNewer(t *testing.T) {
	var next atomic.Uint64
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		v := next.Load()
		return testResources(t, strconv.FormatUint(v, 10), true), v, nil
	}})
	st := openStream(t, serve(t, s))
	next.Store(5)
	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	st.next("CDS")
	next.Store(3)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.PushedVersion(testNode); v != 5 || publishedTag(t, s) != "svc-5" {
		t.Errorf("version 3 replaced version 5: published %d, %s", v, publishedTag(t, s))
	}
	st.quiet(200*time.Millisecond, "an older push must not be sent")
	next.Store(6)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	if publishedTag(t, s) != "svc-6" {
		t.Errorf("newer version 6 not published: %s", publishedTag(t, s))
	}
}

// An inconsistent snapshot (a listener naming a route config not served)
// is an error and is not published: the proxy keeps its previous config.
func TestInconsistentPushKeepsPreviousSnapshot(t *testing.T) {
	var version atomic.Uint64
	version.Store(1)
	s := New(Options{Versioned: func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
		v := version.Load()
		return testResources(t, strconv.FormatUint(v, 10), v != 2), v, nil
	}})
	st := openStream(t, serve(t, s))
	st.send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	st.next("CDS")
	version.Store(2)
	if err := s.Push(proxyOf(t, s)); err == nil {
		t.Fatal("an inconsistent snapshot was pushed without error")
	}
	if v, _ := s.PushedVersion(testNode); v != 1 || publishedTag(t, s) != "svc-1" {
		t.Errorf("previous snapshot not kept: version %d, %s", v, publishedTag(t, s))
	}
	snap, err := s.Snapshot(testNode)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.GetResources(resourcev3.RouteType)) != 1 {
		t.Errorf("route config gone from the published snapshot")
	}
	st.quiet(200*time.Millisecond, "nothing of an inconsistent push may be sent")
	version.Store(3)
	if err := s.Push(proxyOf(t, s)); err != nil {
		t.Fatal(err)
	}
	if publishedTag(t, s) != "svc-3" {
		t.Errorf("consistent push not published: %s", publishedTag(t, s))
	}
}
