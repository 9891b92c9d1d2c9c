package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h2Backend is an HTTP/2 server (h2c, or h2 over TLS by ALPN) that answers
// each request once release is closed and records its connections and the
// streams open on each.
type h2Backend struct {
	srv     *httptest.Server
	release chan struct{}
	// handshake, for a TLS backend, holds handshakes until it is closed;
	// failHandshake then makes them fail.
	handshake     chan struct{}
	failHandshake atomic.Bool

	mu        sync.Mutex
	open      map[string]int // streams open per client connection
	maxOpen   int            // most streams open at once on one connection
	protos    map[string]bool
	conns     atomic.Int64 // accepted
	closed    atomic.Int64
	requests  atomic.Int64
	perClient map[string]int // requests per client connection
}

func newH2Backend(t testing.TB, tlsOn bool, maxStreams int) *h2Backend {
	t.Helper()
	g := &h2Backend{release: make(chan struct{}), open: map[string]int{}, protos: map[string]bool{}, perClient: map[string]int{}}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/warm":
			io.WriteString(w, "ok")
			return
		case "/goaway":
			// net/http's HTTP/2 server sends GOAWAY for this and closes
			// the connection once its streams end.
			w.Header().Set("Connection", "close")
			io.WriteString(w, "ok")
			return
		}
		g.requests.Add(1)
		g.mu.Lock()
		g.open[r.RemoteAddr]++
		g.perClient[r.RemoteAddr]++
		g.maxOpen = max(g.maxOpen, g.open[r.RemoteAddr])
		g.protos[r.Proto] = true
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.open[r.RemoteAddr]--
			g.mu.Unlock()
		}()
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "ok")
	}))
	g.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: maxStreams}
	g.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			g.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			g.closed.Add(1)
		}
	}
	if tlsOn {
		g.handshake = make(chan struct{})
		g.srv.EnableHTTP2 = true
		g.srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			<-g.handshake
			if g.failHandshake.Load() {
				return nil, errors.New("refused")
			}
			return nil, nil
		}}
		g.srv.StartTLS()
	} else {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		g.srv.Config.Protocols = p
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

// clientConns is how many client connections sent requests.
func (g *h2Backend) clientConns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.perClient)
}

// h2Cluster is an HTTP/2 cluster of the backend with a real pool: h2c, or
// TLS offering h2 by ALPN.
func h2Cluster(t testing.TB, g *h2Backend, th Thresholds, topts TransportOptions) *Cluster {
	t.Helper()
	topts.HTTP2 = true
	if g.handshake != nil {
		topts.TLS = TLSOptions{Enabled: true, InsecureSkipVerify: true}
	}
	c := poolCluster(t, th, topts, g.srv.Listener.Addr().String())
	c.HTTP2 = true
	return c
}

// sendPath sends one request to path on h and reads the answer.
func sendPath(t testing.TB, c *Cluster, h *Host, path string) error {
	t.Helper()
	a, err := c.Admit(context.Background(), h, h.Address, false)
	if err != nil {
		return err
	}
	defer a.Release()
	req, _ := http.NewRequest("GET", "http://"+h.Address+path, nil)
	resp, err := a.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// warmUp sends one request the backend answers at once (and does not
// record), so the pool's connection has the server's SETTINGS: they come
// before the answer.
func warmUp(t testing.TB, c *Cluster, h *Host) {
	t.Helper()
	if err := sendPath(t, c, h, "/warm"); err != nil {
		t.Fatal(err)
	}
}

func bothProtocols(t *testing.T, f func(t *testing.T, tlsOn bool)) {
	t.Run("h2c", func(t *testing.T) { f(t, false) })
	t.Run("h2 over TLS", func(t *testing.T) { f(t, true) })
}

// TestH2PendingWhileDialling: requests that arrive while the first HTTP/2
// connection is dialled are pending (the queue bounds them) and all go out
// on that one connection.
func TestH2PendingWhileDialling(t *testing.T) {
	g := newH2Backend(t, true, 100)
	close(g.release)
	c := h2Cluster(t, g, Thresholds{MaxConnections: 4, MaxPendingRequests: 3, MaxRequests: 1 << 20, MaxRetries: 3}, TransportOptions{})
	h := c.Hosts[0]
	var done []chan error
	for range 3 {
		done = append(done, sendAsync(c, h))
	}
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 3 })
	if _, err := send(context.Background(), c, h); !errors.Is(err, ErrOverflow) {
		t.Fatalf("fourth arrival with three pending: err %v, want overflow", err)
	}
	if c.Stats.CxTotal.Load() != 1 || c.Stats.RqActive.Load() != 0 {
		t.Errorf("while dialling: cx_total %d rq_active %d, want 1 (one dial takes them all) and 0", c.Stats.CxTotal.Load(), c.Stats.RqActive.Load())
	}
	close(g.handshake)
	for i, d := range done {
		if err := <-d; err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if g.conns.Load() != 1 || g.clientConns() != 1 || !g.protos["HTTP/2.0"] || len(g.protos) != 1 {
		t.Errorf("server saw %d connections (%d with requests), protocols %v; want 1 and HTTP/2.0", g.conns.Load(), g.clientConns(), g.protos)
	}
	if c.Stats.CxHTTP2Total.Load() != 1 || c.Stats.CxHTTP1Total.Load() != 0 {
		t.Errorf("upstream_cx_http2_total %d http1_total %d, want 1 and 0", c.Stats.CxHTTP2Total.Load(), c.Stats.CxHTTP1Total.Load())
	}
	if c.Stats.RqPendingTotal.Load() != 3 || c.Stats.RqPendingOverflow.Load() != 1 || c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("pending total %d overflow %d active %d, want 3 1 0", c.Stats.RqPendingTotal.Load(),
			c.Stats.RqPendingOverflow.Load(), c.Stats.RqPendingActive.Load())
	}
	// The connection is up: the next request attaches at once.
	if _, err := send(context.Background(), c, h); err != nil {
		t.Fatal(err)
	}
	if c.Stats.RqPendingTotal.Load() != 3 || g.conns.Load() != 1 {
		t.Errorf("pending total %d connections %d, want 3 and 1", c.Stats.RqPendingTotal.Load(), g.conns.Load())
	}
}

// TestH2StreamsMultiplexed: concurrent requests share one connection up to
// the server's SETTINGS_MAX_CONCURRENT_STREAMS; one more waits pending for
// a second connection, dialled only then.
func TestH2StreamsMultiplexed(t *testing.T) {
	bothProtocols(t, func(t *testing.T, tlsOn bool) {
		g := newH2Backend(t, tlsOn, 3)
		if g.handshake != nil {
			close(g.handshake)
		}
		c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{})
		h := c.Hosts[0]
		warmUp(t, c, h)
		var done []chan error
		for range 3 {
			done = append(done, sendAsync(c, h))
		}
		waitFor(t, func() bool { return g.requests.Load() == 3 })
		if g.clientConns() != 1 || c.Stats.CxTotal.Load() != 1 || c.Stats.RqPendingTotal.Load() != 1 {
			t.Fatalf("three streams: %d connections, cx_total %d, pending total %d; want 1 1 1 (only the first waited for a dial)",
				g.clientConns(), c.Stats.CxTotal.Load(), c.Stats.RqPendingTotal.Load())
		}
		done = append(done, sendAsync(c, h))
		waitFor(t, func() bool { return g.requests.Load() == 4 })
		if g.clientConns() != 2 || c.Stats.CxTotal.Load() != 2 || c.Stats.RqPendingTotal.Load() != 2 {
			t.Errorf("fourth stream: %d connections, cx_total %d, pending total %d; want 2 2 2",
				g.clientConns(), c.Stats.CxTotal.Load(), c.Stats.RqPendingTotal.Load())
		}
		close(g.release)
		for _, d := range done {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		g.mu.Lock()
		maxOpen := g.maxOpen
		g.mu.Unlock()
		if maxOpen != 3 || c.Stats.RqActive.Load() != 0 {
			t.Errorf("most streams open on one connection %d, rq_active %d; want 3 and 0", maxOpen, c.Stats.RqActive.Load())
		}
	})
}

// TestH2MaxRequestsAtAttach: max_requests counts streams sent upstream, not
// pending requests: with one stream per connection and one connection,
// requests over max_requests wait pending and go out in turn; a pending
// request handed a new connection while max_requests streams are open
// fails.
func TestH2MaxRequestsAtAttach(t *testing.T) {
	t.Run("pending not counted", func(t *testing.T) {
		g := newH2Backend(t, false, 1)
		c := h2Cluster(t, g, Thresholds{MaxConnections: 1, MaxPendingRequests: 10, MaxRequests: 2, MaxRetries: 3}, TransportOptions{})
		h := c.Hosts[0]
		warmUp(t, c, h)
		warm := sendAsync(c, h)
		waitFor(t, func() bool { return g.requests.Load() == 1 })
		var done []chan error
		for range 3 {
			done = append(done, sendAsync(c, h))
		}
		waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 3 })
		if c.Stats.RqActive.Load() != 1 || c.Stats.RqPendingOverflow.Load() != 0 {
			t.Errorf("rq_active %d overflow %d, want 1 and 0", c.Stats.RqActive.Load(), c.Stats.RqPendingOverflow.Load())
		}
		close(g.release)
		for _, d := range append(done, warm) {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		if g.conns.Load() != 1 || c.Stats.RqPendingOverflow.Load() != 0 {
			t.Errorf("connections %d overflow %d, want 1 and 0", g.conns.Load(), c.Stats.RqPendingOverflow.Load())
		}
	})
	t.Run("checked at attach", func(t *testing.T) {
		g := newH2Backend(t, false, 1)
		c := h2Cluster(t, g, Thresholds{MaxConnections: 2, MaxPendingRequests: 10, MaxRequests: 1, MaxRetries: 3}, TransportOptions{})
		h := c.Hosts[0]
		warmUp(t, c, h) // pending once, for the first dial
		first := sendAsync(c, h)
		waitFor(t, func() bool { return g.requests.Load() == 1 })
		if _, err := send(context.Background(), c, h); !errors.Is(err, ErrOverflow) {
			t.Fatalf("second request: err %v, want overflow when handed the second connection", err)
		}
		if c.Stats.RqPendingTotal.Load() != 2 || c.Stats.CxTotal.Load() != 2 {
			t.Errorf("pending total %d cx_total %d, want 2 and 2 (it waited for its own dial)", c.Stats.RqPendingTotal.Load(), c.Stats.CxTotal.Load())
		}
		close(g.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	})
}

// TestH2MaxRequestsPerConnectionDrains: a connection that took
// max_requests_per_connection streams takes no more (the next request gets
// a new connection) and closes when its last stream ends.
func TestH2MaxRequestsPerConnectionDrains(t *testing.T) {
	bothProtocols(t, func(t *testing.T, tlsOn bool) {
		g := newH2Backend(t, tlsOn, 100)
		if g.handshake != nil {
			close(g.handshake)
		}
		c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{MaxRequestsPerConnection: 2})
		h := c.Hosts[0]
		var done []chan error
		for range 2 {
			done = append(done, sendAsync(c, h))
		}
		waitFor(t, func() bool { return g.requests.Load() == 2 })
		if g.clientConns() != 1 {
			t.Fatalf("two streams on %d connections, want 1", g.clientConns())
		}
		third := sendAsync(c, h)
		waitFor(t, func() bool { return g.requests.Load() == 3 })
		if g.clientConns() != 2 || c.Stats.CxMaxRequests.Load() != 1 || c.Stats.CxActive.Load() != 2 {
			t.Errorf("third stream: %d connections, cx_max_requests %d, cx_active %d; want 2 1 2",
				g.clientConns(), c.Stats.CxMaxRequests.Load(), c.Stats.CxActive.Load())
		}
		close(g.release)
		for _, d := range append(done, third) {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		// The drained connection closes; the second (one stream) idles.
		waitFor(t, func() bool { return c.Stats.CxActive.Load() == 1 && g.closed.Load() == 1 })
	})
}

// TestH2DialFailurePurgesPending: the requests pending on an HTTP/2
// connection being dialled all fail with its error when the dial fails.
func TestH2DialFailurePurgesPending(t *testing.T) {
	g := newH2Backend(t, true, 100)
	g.failHandshake.Store(true)
	c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{})
	h := c.Hosts[0]
	var done []chan error
	for range 3 {
		done = append(done, sendAsync(c, h))
	}
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 3 })
	close(g.handshake)
	for i, d := range done {
		if err := <-d; err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("request %d: err %v, want the TLS handshake failure", i, err)
		}
	}
	if c.Stats.CxTotal.Load() != 1 || c.Stats.CxConnectFail.Load() != 1 || c.Stats.CxActive.Load() != 0 || c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("cx_total %d connect_fail %d cx_active %d pending %d, want 1 1 0 0", c.Stats.CxTotal.Load(),
			c.Stats.CxConnectFail.Load(), c.Stats.CxActive.Load(), c.Stats.RqPendingActive.Load())
	}
}

// TestH2GoAwayDrains: a connection whose server sent GOAWAY takes no new
// stream: later requests go out on a new connection (a request that
// raced the GOAWAY onto the old one is sent again, nothing having been
// processed), and the old connection closes when its last stream ends.
func TestH2GoAwayDrains(t *testing.T) {
	g := newH2Backend(t, false, 100)
	c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{})
	h := c.Hosts[0]
	long := sendAsync(c, h)
	waitFor(t, func() bool { return g.requests.Load() == 1 })
	if err := sendPath(t, c, h, "/goaway"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := sendPath(t, c, h, "/warm"); err != nil {
			t.Fatalf("request %d after the GOAWAY: %v", i, err)
		}
	}
	if g.conns.Load() != 2 {
		t.Errorf("connections %d, want 2 (one new after the GOAWAY)", g.conns.Load())
	}
	close(g.release)
	if err := <-long; err != nil {
		t.Fatalf("the stream open before the GOAWAY: %v", err)
	}
	waitFor(t, func() bool { return g.closed.Load() == 1 && c.Stats.CxActive.Load() == 1 })
	if err := sendPath(t, c, h, "/warm"); err != nil {
		t.Fatal(err)
	}
	if g.conns.Load() != 2 {
		t.Errorf("connections %d, want 2", g.conns.Load())
	}
}

// TestH2PoolServerWithoutH2: an HTTP/2 cluster whose TLS server does not
// choose h2 by ALPN speaks HTTP/1.1, one request per connection: requests
// pending on the first dial get connections of their own.
func TestH2PoolServerWithoutH2(t *testing.T) {
	g := newGateBackend(t, true)
	c := poolCluster(t, DefaultThresholds(), TransportOptions{HTTP2: true, TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true, ALPN: "h2,http/1.1"}},
		g.srv.Listener.Addr().String())
	h := c.Hosts[0]
	var done []chan error
	for range 3 {
		done = append(done, sendAsync(c, h))
	}
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 3 })
	if c.Stats.CxTotal.Load() != 1 {
		t.Errorf("cx_total %d while dialling, want 1 (an HTTP/2 dial is counted for all pending)", c.Stats.CxTotal.Load())
	}
	close(g.handshake)
	waitFor(t, func() bool { return g.conns.Load() == 3 && c.Stats.RqActive.Load() == 3 })
	if c.Stats.CxHTTP1Total.Load() != 3 || c.Stats.CxHTTP2Total.Load() != 0 {
		t.Errorf("upstream_cx_http1_total %d http2_total %d, want 3 and 0", c.Stats.CxHTTP1Total.Load(), c.Stats.CxHTTP2Total.Load())
	}
	close(g.release)
	for _, d := range done {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}

// TestH2RefusedStreamsResent: requests pending on a new connection attach
// to it before the server's SETTINGS arrive (Go's client assumes 100
// streams, as Envoy's codec assumes its own limit); the streams a server
// with a lower limit refuses (REFUSED_STREAM, never processed) are sent
// again, so every request gets its answer.
func TestH2RefusedStreamsResent(t *testing.T) {
	g := newH2Backend(t, true, 1)
	close(g.release)
	c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{})
	h := c.Hosts[0]
	var done []chan error
	for range 6 {
		done = append(done, sendAsync(c, h))
	}
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 6 })
	close(g.handshake)
	for i, d := range done {
		if err := <-d; err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if g.requests.Load() != 6 || c.Stats.RqActive.Load() != 0 {
		t.Errorf("server answered %d, rq_active %d; want 6 and 0", g.requests.Load(), c.Stats.RqActive.Load())
	}
}

// TestH2MaxConnectionDuration: an HTTP/2 connection past
// max_connection_duration takes no new stream; its successor is dialled
// and it closes once its streams have ended.
func TestH2MaxConnectionDuration(t *testing.T) {
	g := newH2Backend(t, false, 100)
	c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{MaxConnectionDuration: 100 * time.Millisecond})
	h := c.Hosts[0]
	long := sendAsync(c, h)
	waitFor(t, func() bool { return g.requests.Load() == 1 })
	time.Sleep(150 * time.Millisecond)
	second := sendAsync(c, h)
	waitFor(t, func() bool { return g.requests.Load() == 2 })
	if g.clientConns() != 2 || c.Stats.CxMaxDuration.Load() != 1 || g.closed.Load() != 0 {
		t.Errorf("connections %d, cx_max_duration %d, closed %d; want 2 1 0 (the old one drains)",
			g.clientConns(), c.Stats.CxMaxDuration.Load(), g.closed.Load())
	}
	close(g.release)
	for _, d := range []chan error{long, second} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return g.closed.Load() == 1 && c.Stats.CxActive.Load() == 1 })
}

// TestH2IdleTimeout: an HTTP/2 connection with no stream for the idle
// timeout is closed.
func TestH2IdleTimeout(t *testing.T) {
	g := newH2Backend(t, false, 100)
	close(g.release)
	c := h2Cluster(t, g, DefaultThresholds(), TransportOptions{IdleTimeout: 200 * time.Millisecond})
	if _, err := send(context.Background(), c, c.Hosts[0]); err != nil {
		t.Fatal(err)
	}
	if c.Stats.CxActive.Load() != 1 {
		t.Fatalf("cx_active %d after one request, want 1", c.Stats.CxActive.Load())
	}
	waitFor(t, func() bool { return c.Stats.CxActive.Load() == 0 && g.closed.Load() == 1 })
}

// TestH2PoolCloseLeaksNothing: after a pool with HTTP/2 connections (busy
// ones included) is closed and its streams end, its connections are closed
// and its goroutines gone.
func TestH2PoolCloseLeaksNothing(t *testing.T) {
	bothProtocols(t, func(t *testing.T, tlsOn bool) {
		g := newH2Backend(t, tlsOn, 2)
		if g.handshake != nil {
			close(g.handshake)
		}
		base := runtime.NumGoroutine()
		st := &Stats{}
		c := &Cluster{Name: "leak", Limits: DefaultThresholds(), Stats: st, HTTP2: true, Hosts: []*Host{{Address: g.srv.Listener.Addr().String(), Weight: 1}},
			Transport: NewTransport(TransportOptions{ConnectTimeout: 5 * time.Second, HTTP2: true, TLS: TLSOptions{Enabled: tlsOn, InsecureSkipVerify: true}}, st)}
		c.Init(nil)
		h := c.Hosts[0]
		warmUp(t, c, h)
		// Two streams per connection, in steps so each new connection has
		// its SETTINGS before it takes more streams than the server allows
		// (before them, streams attach as Envoy's do, up to Go's initial
		// 100, and the server refuses those over its limit).
		var done []chan error
		for i, n := range []int{2, 2, 1} {
			for range n {
				done = append(done, sendAsync(c, h))
			}
			waitFor(t, func() bool { return g.requests.Load() == int64(len(done)) && g.clientConns() == i+1 })
		}
		c.Transport.Close()
		close(g.release)
		for _, d := range done {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return st.CxActive.Load() == 0 && g.closed.Load() == g.conns.Load() })
		if g.conns.Load() != 3 {
			t.Errorf("connections %d, want 3 (two streams each)", g.conns.Load())
		}
		waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	})
}

// BenchmarkPoolAcquireReleaseH2 is the request path's pool work with an
// HTTP/2 connection that has stream capacity: admit (attach) and release.
func BenchmarkPoolAcquireReleaseH2(b *testing.B) {
	g := newH2Backend(b, false, 100)
	close(g.release)
	c := h2Cluster(b, g, DefaultThresholds(), TransportOptions{})
	benchAdmitRelease(b, c)
}

// BenchmarkH2RoundTrip is one request through an HTTP/2 cluster's pool to
// an h2c server (admit, send, read the 2-byte answer, release), 8 at a
// time over one connection.
func BenchmarkH2RoundTrip(b *testing.B) {
	g := newH2Backend(b, false, 250)
	close(g.release)
	c := h2Cluster(b, g, DefaultThresholds(), TransportOptions{})
	h := c.Hosts[0]
	warmUp(b, c, h)
	b.ReportAllocs()
	b.SetParallelism(4) // 2 cores: 8 goroutines
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := send(ctx, c, h); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
