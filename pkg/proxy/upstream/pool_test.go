package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gateBackend answers each request once release is closed and counts the
// connections it accepted.
type gateBackend struct {
	srv     *httptest.Server
	release chan struct{}
	conns   atomic.Int64
	// handshake, for a TLS backend, holds handshakes until it is closed (a
	// slow dial).
	handshake chan struct{}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

func newGateBackend(t testing.TB, tlsOn bool) *gateBackend {
	t.Helper()
	g := &gateBackend{release: make(chan struct{})}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "ok")
	}))
	g.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.conns.Add(1)
		}
	}
	if tlsOn {
		g.handshake = make(chan struct{})
		g.srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			<-g.handshake
			return nil, nil
		}}
		g.srv.StartTLS()
	} else {
		g.srv.Start()
	}
	t.Cleanup(func() {
		closeOnce(g.release)
		if g.handshake != nil {
			closeOnce(g.handshake)
		}
		g.srv.Close()
	})
	return g
}

// poolCluster is an HTTP/1.1 cluster of the given hosts with a real pool.
func poolCluster(t testing.TB, th Thresholds, topts TransportOptions, addrs ...string) *Cluster {
	t.Helper()
	st := &Stats{}
	if topts.ConnectTimeout == 0 {
		topts.ConnectTimeout = 5 * time.Second
	}
	c := &Cluster{Name: "pool", Limits: th, Stats: st, Transport: NewTransport(topts, st)}
	for _, a := range addrs {
		c.Hosts = append(c.Hosts, &Host{Address: a, Weight: 1})
	}
	c.Init(nil)
	t.Cleanup(c.Transport.Close)
	return c
}

// send admits a request to h and sends it, reading the whole answer.
func send(ctx context.Context, c *Cluster, h *Host) (string, error) {
	a, err := c.Admit(ctx, h, h.Address, false)
	if err != nil {
		return "", err
	}
	defer a.Release()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+h.Address+"/", nil)
	resp, err := a.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func sendAsync(c *Cluster, h *Host) chan error {
	done := make(chan error, 1)
	go func() {
		_, err := send(context.Background(), c, h)
		done <- err
	}()
	return done
}

// TestPendingWhileDialling: a request that finds no idle connection is
// pending while its connection is dialled, so with max_pending_requests 1
// a second arrival overflows at once (Istio's circuit-breaking task with
// two clients).
func TestPendingWhileDialling(t *testing.T) {
	g := newGateBackend(t, true)
	close(g.release)
	c := poolCluster(t, Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1 << 20, MaxRetries: 3},
		TransportOptions{TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true}}, g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	first := sendAsync(c, h)
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 1 && c.Stats.CxActive.Load() == 1 })
	if _, err := send(context.Background(), c, h); !errors.Is(err, ErrOverflow) {
		t.Fatalf("second arrival while the first connection is dialled: err %v, want overflow", err)
	}
	close(g.handshake)
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if c.Stats.RqPendingOverflow.Load() != 1 || c.Stats.RqPendingTotal.Load() != 1 || c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("pending overflow %d total %d active %d, want 1 1 0", c.Stats.RqPendingOverflow.Load(),
			c.Stats.RqPendingTotal.Load(), c.Stats.RqPendingActive.Load())
	}
	// Now idle: the next request is attached at once, not pending.
	if _, err := send(context.Background(), c, h); err != nil {
		t.Fatal(err)
	}
	if c.Stats.RqPendingTotal.Load() != 1 || g.conns.Load() != 1 {
		t.Errorf("pending total %d connections %d, want 1 and 1 (the idle connection reused)", c.Stats.RqPendingTotal.Load(), g.conns.Load())
	}
}

// TestMaxRequestsCountsSentNotPending: with max_requests 2 and
// max_connections 2, two more requests wait pending rather than being
// refused on arrival, and go out as connections free up.
func TestMaxRequestsCountsSentNotPending(t *testing.T) {
	g := newGateBackend(t, false)
	c := poolCluster(t, Thresholds{MaxConnections: 2, MaxPendingRequests: 10, MaxRequests: 2, MaxRetries: 3},
		TransportOptions{}, g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	var done []chan error
	for range 4 {
		done = append(done, sendAsync(c, h))
	}
	waitFor(t, func() bool { return c.Stats.RqActive.Load() == 2 && c.Stats.RqPendingActive.Load() == 2 })
	if c.Stats.CxActive.Load() != 2 || c.Stats.CxOverflow.Load() == 0 {
		t.Errorf("cx_active %d cx_overflow %d, want 2 and > 0", c.Stats.CxActive.Load(), c.Stats.CxOverflow.Load())
	}
	close(g.release)
	for i, d := range done {
		if err := <-d; err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if c.Stats.RqPendingOverflow.Load() != 0 || g.conns.Load() != 2 || c.Stats.RqActive.Load() != 0 {
		t.Errorf("overflow %d connections %d rq_active %d, want 0 2 0", c.Stats.RqPendingOverflow.Load(), g.conns.Load(), c.Stats.RqActive.Load())
	}
}

// TestMaxRequestsCheckedAtAttach: a pending request handed a new
// connection while max_requests requests are out fails with overflow.
func TestMaxRequestsCheckedAtAttach(t *testing.T) {
	g := newGateBackend(t, false)
	c := poolCluster(t, Thresholds{MaxConnections: 3, MaxPendingRequests: 10, MaxRequests: 1, MaxRetries: 3},
		TransportOptions{}, g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	first := sendAsync(c, h)
	waitFor(t, func() bool { return c.Stats.RqActive.Load() == 1 })
	if _, err := send(context.Background(), c, h); !errors.Is(err, ErrOverflow) {
		t.Fatalf("second request: err %v, want overflow when handed its connection", err)
	}
	if c.Stats.RqPendingTotal.Load() != 2 || c.Stats.RqPendingOverflow.Load() != 1 {
		t.Errorf("pending total %d overflow %d, want 2 (both waited for a dial) and 1", c.Stats.RqPendingTotal.Load(), c.Stats.RqPendingOverflow.Load())
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The second connection idles; the next request takes it at once.
	if _, err := send(context.Background(), c, h); err != nil {
		t.Fatal(err)
	}
	if c.Stats.CxTotal.Load() != 2 || c.Stats.RqPendingTotal.Load() != 2 {
		t.Errorf("connections %d pending total %d, want 2 and 2", c.Stats.CxTotal.Load(), c.Stats.RqPendingTotal.Load())
	}
	waitFor(t, func() bool { return g.conns.Load() == 2 })
}

// TestHostWithoutConnectionGetsOne: over max_connections, a host with no
// connection at all still gets one (Envoy's tryCreateNewConnection).
func TestHostWithoutConnectionGetsOne(t *testing.T) {
	g1, g2 := newGateBackend(t, false), newGateBackend(t, false)
	close(g2.release)
	c := poolCluster(t, Thresholds{MaxConnections: 1, MaxPendingRequests: 10, MaxRequests: 100, MaxRetries: 3},
		TransportOptions{}, g1.srv.Listener.Addr().String(), g2.srv.Listener.Addr().String())
	first := sendAsync(c, c.Hosts[0])
	waitFor(t, func() bool { return c.Stats.RqActive.Load() == 1 })
	if _, err := send(context.Background(), c, c.Hosts[1]); err != nil {
		t.Fatalf("host with no connection: %v", err)
	}
	if c.Stats.CxOverflow.Load() != 1 {
		t.Errorf("upstream_cx_overflow %d, want 1", c.Stats.CxOverflow.Load())
	}
	close(g1.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// TestPoolMaxRequestsPerConnection: a connection closes when the request
// that reached the limit ends.
func TestPoolMaxRequestsPerConnection(t *testing.T) {
	g := newGateBackend(t, false)
	close(g.release)
	c := poolCluster(t, DefaultThresholds(), TransportOptions{MaxRequestsPerConnection: 2}, g.srv.Listener.Addr().String())
	for range 6 {
		if _, err := send(context.Background(), c, c.Hosts[0]); err != nil {
			t.Fatal(err)
		}
	}
	if g.conns.Load() != 3 || c.Stats.CxMaxRequests.Load() != 3 {
		t.Errorf("connections %d cx_max_requests %d, want 3 and 3", g.conns.Load(), c.Stats.CxMaxRequests.Load())
	}
	waitFor(t, func() bool { return c.Stats.CxActive.Load() == 0 })
}

// TestDialFailurePurgesPending: a failed dial fails the pending request
// with the connect error and gives its connection slot back.
func TestDialFailurePurgesPending(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := poolCluster(t, DefaultThresholds(), TransportOptions{}, addr)
	_, err = send(context.Background(), c, c.Hosts[0])
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err %v, want the dial error", err)
	}
	if c.Stats.CxConnectFail.Load() != 1 || c.Stats.CxActive.Load() != 0 || c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("connect_fail %d cx_active %d pending %d, want 1 0 0", c.Stats.CxConnectFail.Load(), c.Stats.CxActive.Load(), c.Stats.RqPendingActive.Load())
	}
}

func TestPendingGivesUpWithContext(t *testing.T) {
	g := newGateBackend(t, false)
	c := poolCluster(t, Thresholds{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 1 << 20, MaxRetries: 3},
		TransportOptions{}, g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	first := sendAsync(c, h)
	waitFor(t, func() bool { return c.Stats.RqActive.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := send(ctx, c, h)
		done <- err
	}()
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("pending request whose context ended: %v", err)
	}
	if c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("pending active = %d after giving up", c.Stats.RqPendingActive.Load())
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := send(context.Background(), c, h); err != nil {
		t.Fatalf("connection not reused after the waiter gave up: %v", err)
	}
	if g.conns.Load() != 1 {
		t.Errorf("connections %d, want 1", g.conns.Load())
	}
}

// BenchmarkPoolAcquireRelease is the request path's pool work with an idle
// connection: admit (attach) and release.
func BenchmarkPoolAcquireRelease(b *testing.B) {
	g := newGateBackend(b, false)
	close(g.release)
	c := poolCluster(b, DefaultThresholds(), TransportOptions{}, g.srv.Listener.Addr().String())
	benchAdmitRelease(b, c)
}

// benchAdmitRelease measures admit and release on c's first host once a
// request has opened its connection.
func benchAdmitRelease(b *testing.B, c *Cluster) {
	h := c.Hosts[0]
	if _, err := send(context.Background(), c, h); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := c.Admit(ctx, h, h.Address, false)
		if err != nil {
			b.Fatal(err)
		}
		a.Release()
	}
}

// TestIdleConnectionsClosed: a pooled connection idle past the idle timeout
// is closed without waiting for the next request.
func TestIdleConnectionsClosed(t *testing.T) {
	g := newGateBackend(t, false)
	close(g.release)
	c := poolCluster(t, DefaultThresholds(), TransportOptions{IdleTimeout: 200 * time.Millisecond}, g.srv.Listener.Addr().String())
	if _, err := send(context.Background(), c, c.Hosts[0]); err != nil {
		t.Fatal(err)
	}
	if c.Stats.CxActive.Load() != 1 {
		t.Fatalf("cx_active %d after one request, want 1 (kept idle)", c.Stats.CxActive.Load())
	}
	waitFor(t, func() bool { return c.Stats.CxActive.Load() == 0 && c.Hosts[0].CxActive.Load() == 0 })
}

// TestClosedPoolServesPending: requests pending when the pool's transport
// is closed (its cluster replaced) still get a connection; it closes after.
func TestClosedPoolServesPending(t *testing.T) {
	g := newGateBackend(t, false)
	c := poolCluster(t, Thresholds{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 100, MaxRetries: 3},
		TransportOptions{}, g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	first := sendAsync(c, h)
	waitFor(t, func() bool { return c.Stats.RqActive.Load() == 1 })
	second := sendAsync(c, h)
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 1 })
	c.Transport.Close()
	close(g.release)
	for _, d := range []chan error{first, second} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return c.Stats.CxActive.Load() == 0 })
}

// TestEmptyPoolForgotten: a host pool with nothing left is dropped from
// the transport's map by the sweeper, and a later request makes a new one.
func TestEmptyPoolForgotten(t *testing.T) {
	g := newGateBackend(t, false)
	close(g.release)
	c := poolCluster(t, DefaultThresholds(), TransportOptions{IdleTimeout: 100 * time.Millisecond}, g.srv.Listener.Addr().String())
	if _, err := send(context.Background(), c, c.Hosts[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, ok := c.Transport.pools.m.Load(c.Hosts[0].Address)
		return !ok
	})
	if _, err := send(context.Background(), c, c.Hosts[0]); err != nil {
		t.Fatalf("after the pool was forgotten: %v", err)
	}
}

// TestStaleConnectionRetried: a GET that fails on a reused connection the
// server closed without answering is sent once more on a new connection;
// a POST with a body is not.
func TestStaleConnectionRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				// The second request on a connection is read, then the
				// connection closes unanswered (an idle timeout racing it).
				http.ReadRequest(br)
			}()
		}
	}()
	c := poolCluster(t, DefaultThresholds(), TransportOptions{}, l.Addr().String())
	h := c.Hosts[0]
	for i := range 3 {
		if body, err := send(context.Background(), c, h); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q %v", i, body, err)
		}
	}
	if got := accepted.Load(); got != 3 {
		t.Errorf("connections %d, want 3 (each reuse failed and was retried on a new one)", got)
	}
	if c.Stats.RqActive.Load() != 0 || c.Stats.CxActive.Load() > 1 {
		t.Errorf("rq_active %d cx_active %d after the requests", c.Stats.RqActive.Load(), c.Stats.CxActive.Load())
	}

	a, err := c.Admit(context.Background(), h, h.Address, false)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+h.Address+"/", strings.NewReader("body"))
	if _, err := a.RoundTrip(req); err == nil {
		t.Error("POST with a body on a connection the server closes: want the error, not a resend")
	}
	a.Release()
}
