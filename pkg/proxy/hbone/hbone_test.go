package hbone

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != msg {
		t.Fatalf("echo %q, want %q", buf, msg)
	}
}

// A CONNECT carries bytes both ways; the server's Handle sees the verified
// client identity, the authority and the extra headers.
func TestEchoRoundTrip(t *testing.T) {
	up := serveTCP(t, echo)
	seen := make(chan *Request, 1)
	f := newFixture(t, fixtureOptions{handle: func(ctx context.Context, r *Request) (net.Conn, error) {
		seen <- r
		return dialAuthority(ctx, r)
	}})
	tg := f.target(up)
	tg.Header = http.Header{"Baggage": {"k8s.namespace.name=ns-a"}}
	c, err := f.dialer.Dial(ctxT(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := <-seen
	if r.PeerID != f.clientID || r.Authority != up || r.Header.Get("Baggage") != "k8s.namespace.name=ns-a" {
		t.Fatalf("request %+v", r)
	}
	roundTrip(t, c, "hello")
	roundTrip(t, c, strings.Repeat("x", 100_000))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite: %d, %v; want EOF", n, err)
	}
}

// 100 concurrent streams share one pooled TCP connection (ztunnel's
// POOL_MAX_STREAMS_PER_CONNECTION); one more opens a second.
func TestConcurrentStreamsOneConnection(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	conns := make([]net.Conn, 100)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := f.dialer.Dial(ctxT(t), f.target(up))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			msg := fmt.Sprintf("stream %d", i)
			c.Write([]byte(msg))
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("stream %d: %q, %v", i, buf, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.dials.Load(); n != 1 {
		t.Fatalf("%d TCP connections for 100 streams, want 1", n)
	}
	extra, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, extra, "101")
	if n := f.dials.Load(); n != 2 {
		t.Fatalf("%d TCP connections for 101 streams, want 2", n)
	}
	extra.Close()
	for _, c := range conns {
		c.Close()
	}
}

// The server's SETTINGS_MAX_CONCURRENT_STREAMS caps a pooled connection.
func TestServerStreamLimit(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{maxStreams: 3})
	var conns []net.Conn
	for i := range 7 {
		c, err := f.dialer.Dial(ctxT(t), f.target(up))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, fmt.Sprint(i))
		conns = append(conns, c)
	}
	if n := f.dials.Load(); n != 3 {
		t.Fatalf("%d TCP connections for 7 streams at 3 per connection, want 3", n)
	}
	for _, c := range conns {
		c.Close()
	}
}

// The server's certificate must carry one of the target's peer IDs.
func TestWrongServerIdentity(t *testing.T) {
	up := serveTCP(t, echo)
	called := make(chan struct{}, 1)
	f := newFixture(t, fixtureOptions{handle: func(ctx context.Context, r *Request) (net.Conn, error) {
		called <- struct{}{}
		return dialAuthority(ctx, r)
	}})
	tg := f.target(up)
	tg.PeerIDs = []string{"spiffe://cluster.local/ns-b/sa/other"}
	_, err := f.dialer.Dial(ctxT(t), tg)
	if err == nil || !strings.Contains(err.Error(), "server identity") || !strings.Contains(err.Error(), f.serverID) {
		t.Fatalf("Dial = %v, want a server identity error naming %s", err, f.serverID)
	}
	select {
	case <-called:
		t.Fatal("Handle called")
	default:
	}
}

// A client without a certificate, or with one from another CA, is refused
// in the handshake; Handle is never called.
func TestClientRejected(t *testing.T) {
	other := newMesh(t, "cluster.local")
	foreign, _ := other.issue(t, "ns-a", "client")
	for name, cert := range map[string]*tls.Certificate{"no certificate": {}, "another CA": foreign} {
		t.Run(name, func(t *testing.T) {
			up := serveTCP(t, echo)
			called := make(chan struct{}, 1)
			f := newFixture(t, fixtureOptions{clientCert: cert, handle: func(ctx context.Context, r *Request) (net.Conn, error) {
				called <- struct{}{}
				return dialAuthority(ctx, r)
			}})
			c, err := f.dialer.Dial(ctxT(t), f.target(up))
			if err == nil {
				// TLS 1.3: the client may finish before the server's alert.
				_, err = c.Read(make([]byte, 1))
			}
			if err == nil {
				t.Fatal("connected")
			}
			t.Log(err)
			select {
			case <-called:
				t.Fatal("Handle called")
			default:
			}
		})
	}
}

// Handle's *StatusError is the answer's status; any other error is 503.
func TestHandlerStatus(t *testing.T) {
	f := newFixture(t, fixtureOptions{handle: func(ctx context.Context, r *Request) (net.Conn, error) {
		if r.Authority == "10.0.0.1:80" {
			return nil, &StatusError{Code: http.StatusForbidden, Reason: "RBAC: access denied"}
		}
		return nil, errors.New("dial failed")
	}})
	for auth, want := range map[string]int{"10.0.0.1:80": 403, "10.0.0.2:80": 503} {
		_, err := f.dialer.Dial(ctxT(t), f.target(auth))
		var se *StatusError
		if !errors.As(err, &se) || se.Code != want {
			t.Fatalf("%s: Dial = %v, want status %d", auth, err, want)
		}
	}
	// The refused streams freed their slots: the connection still serves.
	if _, err := f.dialer.Dial(ctxT(t), f.target("10.0.0.2:80")); err == nil {
		t.Fatal("no error")
	}
	if n := f.dials.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// Half-close both ways: the client's CloseWrite reaches the upstream as
// EOF while the upstream still answers; the upstream's EOF reaches the
// client as EOF while the client still sends.
func TestHalfClose(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		up := serveTCP(t, func(c *net.TCPConn) {
			b, _ := io.ReadAll(c) // until the client's END_STREAM
			fmt.Fprintf(c, "got %d bytes", len(b))
		})
		f := newFixture(t, fixtureOptions{})
		c, err := f.dialer.Dial(ctxT(t), f.target(up))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("12345"))
		c.(interface{ CloseWrite() error }).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "got 5 bytes" {
			t.Fatalf("read %q, %v", b, err)
		}
	})
	t.Run("upstream first", func(t *testing.T) {
		late := make(chan string, 1)
		up := serveTCP(t, func(c *net.TCPConn) {
			c.Write([]byte("banner"))
			c.CloseWrite()
			b, _ := io.ReadAll(c)
			late <- string(b)
		})
		f := newFixture(t, fixtureOptions{})
		c, err := f.dialer.Dial(ctxT(t), f.target(up))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "banner" {
			t.Fatalf("read %q, %v", b, err)
		}
		for range 3 {
			if _, err := c.Write([]byte("late")); err != nil {
				t.Fatalf("write after the upstream's EOF: %v", err)
			}
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		if got := <-late; got != "latelatelate" {
			t.Fatalf("upstream got %q after its half-close", got)
		}
	})
}

// 64 MiB each way through one stream, written and read concurrently
// (flow control both ways), intact.
func TestLargeTransfer(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 64 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	go func() {
		for p := data; len(p) > 0; {
			n, err := c.Write(p[:min(len(p), 100_000)])
			if err != nil {
				return
			}
			p = p[n:]
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("data corrupted")
	}
}

// A pooled connection is reused while in use or recently used, and closed
// after IdleTimeout without streams.
func TestIdlePoolCleanup(t *testing.T) {
	up := serveTCP(t, echo)
	const idle = 200 * time.Millisecond
	f := newFixture(t, fixtureOptions{idle: idle})
	for range 3 {
		c, err := f.dialer.Dial(ctxT(t), f.target(up))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "x")
		c.Close()
	}
	if d, cl := f.dials.Load(), f.closes.Load(); d != 1 || cl != 0 {
		t.Fatalf("%d dials, %d closes; want the connection reused", d, cl)
	}
	pools := func() int {
		f.dialer.mu.Lock()
		defer f.dialer.mu.Unlock()
		return len(f.dialer.pools)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (f.closes.Load() == 0 || pools() != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.closes.Load() != 1 || pools() != 0 {
		t.Fatalf("after the idle timeout: %d closes, %d pools; want the connection closed and dropped", f.closes.Load(), pools())
	}
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "y")
	c.Close()
	if f.dials.Load() != 2 {
		t.Fatalf("%d dials, want a new connection", f.dials.Load())
	}
}

// Server.Close sends GOAWAY: open streams keep working and Close waits for
// them; new streams go nowhere.
func TestServerCloseDrains(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{drain: 10 * time.Second})
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "before")
	closed := make(chan struct{})
	go func() { f.srv.Close(); close(closed) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned with a stream open")
	default:
	}
	roundTrip(t, c, "during the drain")
	if _, err := f.dialer.Dial(ctxT(t), f.target(up)); err == nil {
		t.Fatal("a new stream after Close")
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("end of stream: %q, %v", b, err)
	}
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the last stream ended")
	}
}

// Server.Close gives up on streams after DrainTimeout and resets them.
func TestServerCloseBounded(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{drain: 200 * time.Millisecond})
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	f.srv.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after a forced close: %v, want a reset", err)
	}
}

// The server's chain must verify against the client's trust bundle.
func TestServerFromAnotherCA(t *testing.T) {
	other := newMesh(t, "cluster.local")
	f := newFixture(t, fixtureOptions{clientRoots: other.roots})
	_, err := f.dialer.Dial(ctxT(t), f.target("10.0.0.1:80"))
	if err == nil || !strings.Contains(err.Error(), "not from the mesh CA") || !strings.Contains(err.Error(), f.addr) {
		t.Fatalf("Dial = %v, want a chain error naming %s", err, f.addr)
	}
}

// TestRecordsBatched: a frame batch's TLS records leave in one write on
// TCP (the coalescer), not one write per 16 KiB record: 4 MiB sent in
// 256 KiB writes is at least 256 records, and far fewer writes.
func TestRecordsBatched(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total, chunk = 4 << 20, 256 << 10
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, make([]byte, total))
		read <- err
	}()
	before := f.writes.Load()
	buf := make([]byte, chunk)
	for range total / chunk {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	// Window updates and the echo's flow add a few writes of their own.
	if n := f.writes.Load() - before; n > total/(16<<10)/4 {
		t.Errorf("%d writes on TCP for %d bytes: records not batched", n, total)
	}
}
