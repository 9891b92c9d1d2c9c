package upstream

import (
	"bufio"
	"context"
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

// scriptServer accepts connections on loopback and runs serve on each.
func scriptServer(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	acceptEach(t, l, func(c net.Conn) {
		accepted.Add(1)
		serve(c, bufio.NewReader(c))
	})
	return l.Addr().String(), accepted
}

// acceptEach serves every connection l accepts with serve, on its own
// goroutine, closing it after; l closes with the test.
func acceptEach(t testing.TB, l net.Listener, serve func(net.Conn)) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
}

// dialH1Test is an h1Conn to addr made as a plaintext pool dials it.
func dialH1Test(t *testing.T, addr string) *h1Conn {
	t.Helper()
	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second}, nil)
	t.Cleanup(tr.Close)
	cc, err := tr.dialH1(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc.(*h1Conn)
}

func postIdle(t *testing.T, c *Cluster, body string) (string, error) {
	t.Helper()
	h := c.Hosts[0]
	a, err := c.Admit(context.Background(), h, h.Address, false)
	if err != nil {
		return "", err
	}
	defer a.Release()
	req, _ := http.NewRequest("POST", "http://"+h.Address+"/", strings.NewReader(body))
	resp, err := a.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// A connection the server closed while it was idle is found before a
// request goes on it, so even a POST (which is never sent twice) goes on
// a new connection: plaintext (the socket is peeked) and TLS (through
// crypto/tls, which must not take a TLS 1.3 session ticket for a close).
func TestH1IdleCloseFoundBeforeUse(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "tls"}[tlsOn], func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				w.Write(b)
			}))
			srv.Config.IdleTimeout = 100 * time.Millisecond
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			opts := TransportOptions{}
			if tlsOn {
				srv.StartTLS()
				opts.TLS = TLSOptions{Enabled: true, InsecureSkipVerify: true}
			} else {
				srv.Start()
			}
			defer srv.Close()
			c := poolCluster(t, DefaultThresholds(), opts, srv.Listener.Addr().String())
			for i := range 2 {
				// Back to back: the connection is reused, and still alive.
				if got, err := postIdle(t, c, "a"); err != nil || got != "a" {
					t.Fatalf("POST %d: %q %v", i, got, err)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("%d connections for two back-to-back requests, want 1", n)
			}
			time.Sleep(300 * time.Millisecond) // the server closes the idle connection
			if got, err := postIdle(t, c, "b"); err != nil || got != "b" {
				t.Fatalf("POST after the server's idle close: %q %v", got, err)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// The idle sweep closes a connection the server closed, instead of
// keeping its socket until the idle timeout.
func TestH1SweepClosesPeerClosed(t *testing.T) {
	addr, _ := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := poolCluster(t, DefaultThresholds(), TransportOptions{}, addr)
	if body, err := send(context.Background(), c, c.Hosts[0]); err != nil || body != "ok" {
		t.Fatalf("GET: %q %v", body, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats.CxActive.Load() != 0 {
		c.Transport.eachPool((*hostPool).closeIdle)
		if time.Now().After(deadline) {
			t.Fatal("the connection the server closed is still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Responses: 1xx answers are skipped, a response asking to close is not
// reused, a body abandoned before its end closes the connection, and a
// response head over Envoy's 60 KiB is refused.
func TestH1Responses(t *testing.T) {
	addr, accepted := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/continue":
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
					"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
				return
			case "/big":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
				c.Write(make([]byte, 1000000))
			case "/huge-head":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 70<<10)+"\r\nContent-Length: 0\r\n\r\n")
			case "/chunked":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\n\r\n")
			}
		}
	})
	get := func(cc *h1Conn, path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		return cc.RoundTrip(req)
	}
	cc := dialH1Test(t, addr)
	resp, err := get(cc, "/continue")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after 1xx: %v %v", resp, err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" || cc.Available() != 1 {
		t.Fatalf("body %q, available %d", b, cc.Available())
	}
	resp, err = get(cc, "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" || resp.Trailer.Get("X-T") != "v" || cc.Available() != 1 {
		t.Fatalf("chunked: body %q trailer %v available %d", b, resp.Trailer, cc.Available())
	}
	resp, err = get(cc, "/big")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if cc.Available() != 0 || cc.Err() == nil {
		t.Error("a body abandoned before its end left the connection usable")
	}

	cc = dialH1Test(t, addr)
	resp, err = get(cc, "/close")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if cc.Available() != 0 {
		t.Error("Connection: close from the server: the connection is still available")
	}

	cc = dialH1Test(t, addr)
	if _, err := get(cc, "/huge-head"); !errors.Is(err, errH1HeadTooLarge) {
		t.Errorf("70 KiB response head: %v, want %v", err, errH1HeadTooLarge)
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// A request's context ending while the response is awaited fails the
// request at once with the context's error, and the connection with it.
func TestH1ContextInterrupts(t *testing.T) {
	addr, _ := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		time.Sleep(10 * time.Second)
	})
	cc := dialH1Test(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	start := time.Now()
	_, err := cc.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("RoundTrip: %v after %v, want the deadline at once", err, time.Since(start))
	}
	if cc.Err() == nil {
		t.Error("the interrupted connection is still usable")
	}
}

// A large body is written by its own goroutine, so a server answering
// before reading it is heard; the connection is not reused (the body was
// not all sent), and the request body is closed.
func TestH1EarlyResponse(t *testing.T) {
	addr, _ := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n")
		time.Sleep(2 * time.Second)
	})
	cc := dialH1Test(t, addr)
	body := &closeRecorder{Reader: io.LimitReader(zeros{}, 64<<20)}
	req, _ := http.NewRequest("PUT", "http://"+addr+"/", body)
	req.ContentLength = 64 << 20
	resp, err := cc.RoundTrip(req)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("RoundTrip: %v %v", resp, err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if cc.Err() == nil {
		t.Error("the connection whose request body was cut short is still usable")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !body.closed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !body.closed.Load() {
		t.Error("the request body was not closed")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return nil
}

// A 101 answer hands the connection over as the body, both ways, with
// what the response head left buffered read first.
func TestH1Upgrade(t *testing.T) {
	addr, _ := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nhello")
		b := make([]byte, 4)
		if _, err := io.ReadFull(br, b); err == nil {
			c.Write(b)
		}
	})
	cc := dialH1Test(t, addr)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "x")
	resp, err := cc.RoundTrip(req)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("RoundTrip: %v %v", resp, err)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not an io.ReadWriteCloser", resp.Body)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(rw, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q %v", b, err)
	}
	rw.Write([]byte("ping"))
	b = make([]byte, 4)
	if _, err := io.ReadFull(rw, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo %q %v", b, err)
	}
	rw.Close()
	if cc.Available() != 0 {
		t.Error("an upgraded connection is available to the pool")
	}
}

// BenchmarkH1RoundTrip sends GETs answered with 1 KiB over pooled
// HTTP/1.1 connections to a minimal server (8 goroutines): through net/http's
// Transport (the baseline, first) and through the cluster's pool of
// h1Conns, which reports its ns/op as a ratio to the baseline's.
func BenchmarkH1RoundTrip(b *testing.B) {
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 1024)
	addr, _ := scriptServer(b, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
	var baseline float64
	b.Run("net-http", func(b *testing.B) {
		rt := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		defer rt.CloseIdleConnections()
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				r, err := rt.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		})
		baseline = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("sluice", func(b *testing.B) {
		c := poolCluster(b, DefaultThresholds(), TransportOptions{}, addr)
		h := c.Hosts[0]
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				a, err := c.Admit(ctx, h, h.Address, false)
				if err != nil {
					b.Error(err)
					return
				}
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				r, err := a.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				a.Release()
			}
		})
		if baseline > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/baseline, "x-net/http")
		}
	})
}

// A server that sends more than the response (a second, unasked one) does
// not get the next request's answer mixed up: the connection is dropped
// and the next request goes on a new one.
func TestH1UnsolicitedBytesRefused(t *testing.T) {
	addr, accepted := scriptServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
		}
	})
	c := poolCluster(t, DefaultThresholds(), TransportOptions{}, addr)
	for i := range 3 {
		if body, err := send(context.Background(), c, c.Hosts[0]); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q %v", i, body, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (each one left with unasked bytes)", n)
	}
}
