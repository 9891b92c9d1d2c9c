package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// xnetClient is x/net's HTTP/2 Transport with a client workload's mTLS to
// the fixture's server: another HTTP/2 implementation on the wire.
func xnetClient(t *testing.T, f *fixture) *http2.Transport {
	cert, _ := f.mesh.issue(t, "ns-a", "client")
	return &http2.Transport{DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
		return (&tls.Dialer{Config: clientTLS(certFunc(cert), f.mesh.rootsFunc(), []string{f.serverID})}).DialContext(ctx, "tcp", f.addr)
	}}
}

// The server answers what is not a CONNECT 405 and a CONNECT without a
// host:port authority 400, and streams a CONNECT from x/net's client.
func TestServerInteropXNetClient(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	tr := xnetClient(t, f)
	defer tr.CloseIdleConnections()
	get, _ := http.NewRequest(http.MethodGet, "https://"+up+"/", nil)
	if resp, err := tr.RoundTrip(get); err != nil || resp.StatusCode != 405 {
		t.Fatalf("GET: %v, %v; want 405", resp, err)
	}
	bad := &http.Request{Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: "x:1"}, Host: "no-port", Header: http.Header{}}
	if resp, err := tr.RoundTrip(bad); err != nil || resp.StatusCode != 400 {
		t.Fatalf("CONNECT no-port: %v, %v; want 400", resp, err)
	}
	pr, pw := io.Pipe()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: up}, Host: up, Header: http.Header{}, Body: pr}
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v, %v", resp, err)
	}
	pw.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	pw.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Fatalf("end: %q, %v", b, err)
	}
}

// The Dialer against x/net's HTTP/2 server with a CONNECT handler.
func TestDialerInteropXNetServer(t *testing.T) {
	m := newMesh(t, "cluster.local")
	srvCert, srvID := m.issue(t, "ns-b", "server")
	cliCert, cliID := m.issue(t, "ns-a", "client")
	l, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS(certFunc(srvCert), m.rootsFunc(), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != "10.1.2.3:8080" {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			w.Write(buf[:n])
			w.(http.Flusher).Flush()
			if err != nil {
				return
			}
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if c.(*tls.Conn).Handshake() == nil {
					(&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: h})
				}
			}()
		}
	}()
	d := NewDialer(DialerOptions{Certificate: certFunc(cliCert), Roots: m.rootsFunc()})
	defer d.Close()
	c, err := d.Dial(ctxT(t), Target{Addr: l.Addr().String(), Authority: "10.1.2.3:8080", PeerIDs: []string{srvID}, SourceID: cliID})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello through x/net")
	c.(interface{ CloseWrite() error }).CloseWrite()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("end: %q, %v", b, err)
	}
}

// A Dial cancelled while Handle runs resets the stream, which cancels
// Handle's context.
func TestDialCancelled(t *testing.T) {
	handled := make(chan error, 1)
	f := newFixture(t, fixtureOptions{handle: func(ctx context.Context, r *Request) (net.Conn, error) {
		select {
		case <-ctx.Done():
			handled <- ctx.Err()
		case <-time.After(10 * time.Second):
			handled <- errors.New("not cancelled")
		}
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := f.dialer.Dial(ctx, f.target("10.0.0.1:80")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want deadline exceeded", err)
	}
	if err := <-handled; !errors.Is(err, context.Canceled) {
		t.Fatalf("Handle's context: %v", err)
	}
}

// Read deadlines expire and can be lifted; the stream goes on.
func TestStreamDeadlines(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	c, err := f.dialer.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("deadline after %v", d)
	}
	c.SetReadDeadline(time.Time{})
	roundTrip(t, c, "after")
}

// relay forwards TCP to addr until frozen; then it forwards nothing (a
// peer gone without a FIN or RST).
type relay struct {
	addr   string
	frozen chan struct{}
}

func newRelay(t *testing.T, to string) *relay {
	r := &relay{frozen: make(chan struct{})}
	r.addr = serveTCP(t, func(c *net.TCPConn) {
		up, err := net.Dial("tcp", to)
		if err != nil {
			return
		}
		defer up.Close()
		done := make(chan struct{}, 2)
		fwd := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				select {
				case <-r.frozen:
					<-t.Context().Done()
					done <- struct{}{}
					return
				default:
				}
				if n > 0 {
					dst.Write(buf[:n])
				}
				if err != nil {
					done <- struct{}{}
					return
				}
			}
		}
		go fwd(up, c)
		go fwd(c, up)
		<-done
	})
	return r
}

// PINGs keep an idle connection checked: answered, the stream lives on;
// unanswered within the timeout, the connection and its streams fail.
func TestKeepAliveDeadPeer(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	r := newRelay(t, f.addr)
	cert, id := f.mesh.issue(t, "ns-a", "client")
	d := NewDialer(DialerOptions{Certificate: certFunc(cert), Roots: f.mesh.rootsFunc(),
		KeepAlive: KeepAlive{Interval: 30 * time.Millisecond, Timeout: 200 * time.Millisecond}})
	defer d.Close()
	c, err := d.Dial(ctxT(t), Target{Addr: r.addr, Authority: up, PeerIDs: []string{f.serverID}, SourceID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(400 * time.Millisecond) // over a dozen PINGs answered
	roundTrip(t, c, "alive")
	close(r.frozen)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "PING") {
		t.Fatalf("Read = %v, want the PING timeout", err)
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}
