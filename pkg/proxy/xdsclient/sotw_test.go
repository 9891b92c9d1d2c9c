package xdsclient

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// Against a control plane that serves only SotW (its Delta answers
// Unimplemented), an auto client falls back to SotW, stays there, and
// gets the whole mesh, following changes.
func TestAutoFallsBackToSotW(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{sotwOnly: true})
	p, c := startClient(t, Options{Address: cp.addr})
	wantView(t, p, "the first full view over SotW", "routes=r1 svc=one:8080 svc2=one:8081")
	if c.Protocol() != ProtocolSotW {
		t.Errorf("protocol %s after the fallback, want sotw", c.Protocol())
	}
	cp.set(twoClusters("r2", 9090, 8081))
	wantView(t, p, "the change over SotW", "routes=r2 svc=one:9090 svc2=one:8081")
	if n := len(cp.requests()); n != 0 {
		t.Errorf("%d delta requests reached the server", n)
	}
}

// A delta-only client does not fall back: it keeps asking for Delta.
func TestDeltaOnlyDoesNotFallBack(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{sotwOnly: true})
	p, c := startClient(t, Options{Address: cp.addr, Protocol: ProtocolDelta})
	time.Sleep(500 * time.Millisecond)
	if got := describe(p.last()); got != "routes= " {
		t.Errorf("a delta-only client got %q from a SotW-only server", got)
	}
	if c.Protocol() != ProtocolDelta {
		t.Errorf("protocol %s, want delta", c.Protocol())
	}
}

// --xds-protocol sotw speaks SotW to a server that has Delta too.
func TestSotWWhenAsked(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", twoClusters("r1", 8080, 8081), serverOpts{})
	p, _ := startClient(t, Options{Address: cp.addr, Protocol: ProtocolSotW})
	wantView(t, p, "the first full view over SotW", "routes=r1 svc=one:8080 svc2=one:8081")
	cp.set(world{route: "r1", clusters: map[string]uint32{"svc": 9090}})
	wantView(t, p, "the removal over SotW", "routes=r1 svc=one:9090")
	if n := len(cp.requests()); n != 0 {
		t.Errorf("%d delta requests reached the server", n)
	}
}

// bigWorld is a mesh whose CDS response is about 6 MiB, over grpc-go's
// 4 MiB receive default.
func bigWorld() world {
	w := world{route: "r1", clusters: map[string]uint32{}, padding: 3000}
	for i := range 2000 {
		w.clusters[fmt.Sprintf("svc%04d", i)] = 8080
	}
	return w
}

// A response over 4 MiB is received, over SotW and over Delta; with a
// 4 MiB limit it is not.
func TestLargeResponse(t *testing.T) {
	w := bigWorld()
	size := 0
	for _, r := range w.snapshot(t, 1).GetResources(ClusterType) {
		size += proto.Size(r)
	}
	if size < 5<<20 {
		t.Fatalf("the clusters take %d bytes, want over 5 MiB", size)
	}
	for _, protocol := range []Protocol{ProtocolSotW, ProtocolDelta} {
		t.Run(string(protocol), func(t *testing.T) {
			cp := startControlPlane(t, "127.0.0.1:0", w, serverOpts{})
			p, _ := startClient(t, Options{Address: cp.addr, Protocol: protocol})
			eventually(t, "every cluster and its endpoints", func() error {
				r := p.last()
				if len(r.Items[ClusterType]) != 2000 || len(r.Items[EndpointType]) != 2000 {
					return fmt.Errorf("%d clusters, %d endpoints", len(r.Items[ClusterType]), len(r.Items[EndpointType]))
				}
				return nil
			})
			small, _ := startClient(t, Options{Address: cp.addr, Protocol: protocol, MaxMessageBytes: 4 << 20})
			time.Sleep(time.Second)
			if n := len(small.last().Items[ClusterType]); n != 0 {
				t.Errorf("with a 4 MiB limit the client took %d clusters", n)
			}
		})
	}
}
