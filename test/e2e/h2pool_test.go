package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// h2Backend is an h2c server taking one stream per connection at a time,
// recording the protocols and HTTP/2 connections it sees; X-Block requests
// wait until it is unblocked.
type h2Backend struct {
	port     int
	inFlight atomic.Int64
	mu       sync.Mutex
	protos   map[string]int
	conns    map[string]bool
	gate     chan struct{}
}

func startH2Backend(t *testing.T) *h2Backend {
	t.Helper()
	b := &h2Backend{protos: map[string]int{}, conns: map[string]bool{}, gate: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = lis.Addr().(*net.TCPAddr).Port
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: p, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1}, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.inFlight.Add(1)
			defer b.inFlight.Add(-1)
			b.mu.Lock()
			b.protos[r.Proto]++
			if r.ProtoMajor == 2 {
				b.conns[r.RemoteAddr] = true
			}
			b.mu.Unlock()
			if r.Header.Get("X-Block") != "" {
				select {
				case <-b.gate:
				case <-r.Context().Done():
				}
			}
			io.WriteString(w, "ok\n")
		})}
	go srv.Serve(lis)
	t.Cleanup(func() {
		b.unblock()
		srv.Close()
	})
	return b
}

func (b *h2Backend) unblock() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.gate:
	default:
		close(b.gate)
	}
}

// TestH2UpstreamCircuitBreaker: with h2UpgradePolicy UPGRADE the sidecar
// speaks HTTP/2 to the backend, and the circuit breakers count as Envoy's
// HTTP/2 pool does: with maxConnections 1 and a server taking one stream
// at a time, a second concurrent request waits pending for the stream
// (not refused by http2MaxRequests), and a third, with
// http1MaxPendingRequests 1, is refused at once with 503 UO.
func TestH2UpstreamCircuitBreaker(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	b := startH2Backend(t)
	doc := testenv.ServiceYAML("h2cb", "default", map[string]string{"app": "h2cb"}, map[string]int{"http": 8080})
	doc += "---\n" + testenv.MustYAML(map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": "h2cb-0", "namespace": "default"},
		"spec":     map[string]any{"address": "127.0.0.1", "labels": map[string]string{"app": "h2cb"}, "ports": map[string]int{"http": b.port}},
	})
	m.WriteConfig("service-h2cb.yaml", doc)
	m.WriteConfig("dr-h2cb.yaml", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h2cb}
spec:
  host: h2cb
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {h2UpgradePolicy: UPGRADE, http1MaxPendingRequests: 1, http2MaxRequests: 10}
`)
	c := m.AddClient(testenv.ClientOptions{Name: "h2cb-client"})
	m.WaitReady()
	m.WaitConverged(func() error {
		r, err := c.Get("h2cb:8080", "/", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 {
			return fmt.Errorf("%s", r)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.protos["HTTP/2.0"] == 0 {
			return fmt.Errorf("backend saw %v, want HTTP/2.0 (the DestinationRule not applied yet)", b.protos)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
	cl := "cluster." + clusterOf("h2cb") + "."
	before := adminStats(t, c.AdminAddress)

	results := make(chan *testenv.Response, 3)
	errs := make(chan error, 3)
	send := func() {
		r, err := c.Get("h2cb:8080", "/", map[string]string{"X-Block": "1"})
		if err != nil {
			errs <- err
			return
		}
		results <- r
	}
	go send()
	if err := testenv.Eventually(func() error {
		if b.inFlight.Load() != 1 {
			return fmt.Errorf("first request not at the backend yet")
		}
		return nil
	}, convergeTimeout); err != nil {
		t.Fatal(err)
	}
	go send()
	if err := testenv.Eventually(func() error {
		if got := adminStats(t, c.AdminAddress)[cl+"upstream_rq_pending_active"]; got != 1 {
			return fmt.Errorf("upstream_rq_pending_active %d, want 1", got)
		}
		return nil
	}, convergeTimeout); err != nil {
		t.Fatal(err)
	}
	go send()
	select {
	case r := <-results:
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("X-Envoy-Overloaded") != "true" ||
			!strings.Contains(r.Header.Get("X-Sluice-Response-Flags"), "UO") {
			t.Fatalf("third request with one in flight and one pending: %s, want 503 UO overloaded", r)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(convergeTimeout):
		t.Fatal("the third request was not refused")
	}
	b.unblock()
	for range 2 {
		select {
		case r := <-results:
			if r.Status != 200 {
				t.Errorf("admitted request: %s", r)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(convergeTimeout):
			t.Fatal("admitted requests did not complete")
		}
	}
	st := adminStats(t, c.AdminAddress)
	for name, want := range map[string]uint64{"upstream_rq_pending_overflow": 1, "upstream_rq_pending_total": 1, "upstream_cx_http1_total": 0} {
		if got := st[cl+name] - before[cl+name]; got != want {
			t.Errorf("%s grew by %d, want %d", name, got, want)
		}
	}
	if st[cl+"upstream_cx_http2_total"] != 1 {
		t.Errorf("upstream_cx_http2_total %d, want 1 (one connection, maxConnections 1)", st[cl+"upstream_cx_http2_total"])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) != 1 {
		t.Errorf("backend saw %d HTTP/2 connections, want 1", len(b.conns))
	}
}
