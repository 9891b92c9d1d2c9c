package hbone

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A connection that does not finish its handshake is closed after
// HandshakeTimeout.
func TestServerHandshakeTimeout(t *testing.T) {
	f := newFixture(t, fixtureOptions{handshake: 100 * time.Millisecond})
	for name, send := range map[string]func(net.Conn){
		"silent TCP": func(net.Conn) {},
		"TLS, no HTTP/2 preface": func(c net.Conn) {
			cert, _ := f.mesh.issue(t, "ns-a", "client")
			tc := tls.Client(c, clientTLS(certFunc(cert), f.mesh.rootsFunc(), []string{f.serverID}))
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			send(c)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			_, err = io.Copy(io.Discard, c)
			if d := time.Since(start); err != nil || d > 2*time.Second {
				t.Fatalf("closed after %v, %v; want closed after the 100ms handshake timeout", d, err)
			}
		})
	}
}

// A client opening more streams than MAX_CONCURRENT_STREAMS gets
// REFUSED_STREAM for the extra one (raw frames, not the Dialer, which
// keeps within the limit).
func TestServerRefusesOverLimit(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{maxStreams: 1})
	cert, _ := f.mesh.issue(t, "ns-a", "client")
	tc, err := tls.Dial("tcp", f.addr, clientTLS(certFunc(cert), f.mesh.rootsFunc(), []string{f.serverID}))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, http2.ClientPreface)
	fr := http2.NewFramer(tc, tc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, id := range []uint32{1, 3} {
		hb.Reset()
		enc.WriteField(hpack.HeaderField{Name: ":method", Value: "CONNECT"})
		enc.WriteField(hpack.HeaderField{Name: ":authority", Value: up})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
	}
	var ok1, refused3 bool
	for !ok1 || !refused3 {
		fm, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("ok %v refused %v: %v", ok1, refused3, err)
		}
		switch fm := fm.(type) {
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				if v, _ := fm.Value(http2.SettingMaxConcurrentStreams); v != 1 {
					t.Fatalf("MAX_CONCURRENT_STREAMS %d", v)
				}
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if fm.StreamID != 1 || fm.PseudoValue("status") != "200" {
				t.Fatalf("stream %d answered %s", fm.StreamID, fm.PseudoValue("status"))
			}
			ok1 = true
		case *http2.RSTStreamFrame:
			if fm.StreamID != 3 || fm.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v", fm.StreamID, fm.ErrCode)
			}
			refused3 = true
		}
	}
}

// Callers waiting for a connection share its dial: twenty Dials to a peer
// that never answers the handshake cost one TCP connection and one
// handshake timeout.
func TestDeadDestinationOneDial(t *testing.T) {
	hold := serveTCP(t, func(c *net.TCPConn) { <-t.Context().Done() })
	m := newMesh(t, "cluster.local")
	cert, id := m.issue(t, "ns-a", "client")
	var dials atomic.Int32
	d := NewDialer(DialerOptions{Certificate: certFunc(cert), Roots: m.rootsFunc(), HandshakeTimeout: 300 * time.Millisecond,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}})
	defer d.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := d.Dial(ctxT(t), Target{Addr: hold, Authority: "10.0.0.1:80", PeerIDs: []string{"spiffe://cluster.local/ns/b/sa/b"}, SourceID: id})
			if err == nil || !strings.Contains(err.Error(), hold) {
				t.Errorf("Dial = %v, want an error naming %s", err, hold)
			}
		})
	}
	wg.Wait()
	if n, took := dials.Load(), time.Since(start); n != 1 || took > 2*time.Second {
		t.Fatalf("%d dials in %v; want 1 dial and one 300ms handshake timeout", n, took)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pools) != 0 {
		t.Fatalf("%d pools left for a failed destination", len(d.pools))
	}
}

// A peer breaking HTTP/2 (here: a first frame other than SETTINGS) gets a
// GOAWAY with PROTOCOL_ERROR and the connection is closed.
func TestServerProtocolError(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cert, _ := f.mesh.issue(t, "ns-a", "client")
	tc, err := tls.Dial("tcp", f.addr, clientTLS(certFunc(cert), f.mesh.rootsFunc(), []string{f.serverID}))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, http2.ClientPreface)
	fr := http2.NewFramer(tc, tc)
	fr.WritePing(false, [8]byte{})
	for {
		fm, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY: %v", err)
		}
		if g, ok := fm.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("GOAWAY %v", g.ErrCode)
			}
			break
		}
	}
	if _, err := fr.ReadFrame(); err == nil {
		t.Fatal("connection still open after GOAWAY")
	}
}

// Dial refuses what it cannot send: a target without peer identities, an
// authority without a port, connection-specific or malformed headers.
func TestDialRejectsBadTargets(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	good := f.target("10.0.0.1:80")
	for name, tg := range map[string]Target{
		"no peer IDs":       {Addr: f.addr, Authority: "10.0.0.1:80", SourceID: f.clientID},
		"no port":           {Addr: f.addr, Authority: "10.0.0.1", PeerIDs: good.PeerIDs},
		"connection header": {Addr: f.addr, Authority: "10.0.0.1:80", PeerIDs: good.PeerIDs, Header: http.Header{"Connection": {"close"}}},
		"bad header value":  {Addr: f.addr, Authority: "10.0.0.1:80", PeerIDs: good.PeerIDs, Header: http.Header{"X-A": {"a\nb"}}},
	} {
		if _, err := f.dialer.Dial(ctxT(t), tg); err == nil || !strings.Contains(err.Error(), f.addr) {
			t.Errorf("%s: Dial = %v, want an error naming the tunnel", name, err)
		}
	}
	if n := f.dials.Load(); n != 0 {
		t.Fatalf("%d connections dialled for rejected targets", n)
	}
}

// The certificate must be the one of Target.SourceID (the pool key).
func TestSourceIDMismatch(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	tg := f.target("10.0.0.1:80")
	tg.SourceID = "spiffe://cluster.local/ns/ns-a/sa/someone-else"
	if _, err := f.dialer.Dial(ctxT(t), tg); err == nil || !strings.Contains(err.Error(), "SourceID") {
		t.Fatalf("Dial = %v, want a SourceID mismatch", err)
	}
}

// Certificate is asked per new connection (a rotated certificate is used
// from the next one on); pooled streams do not ask again.
func TestCertificatePerConnection(t *testing.T) {
	up := serveTCP(t, echo)
	f := newFixture(t, fixtureOptions{})
	var asked atomic.Int32
	var issued []*tls.Certificate
	for range 2 {
		c, _ := f.mesh.issue(t, "ns-a", "client")
		issued = append(issued, c)
	}
	d := NewDialer(DialerOptions{Roots: f.mesh.rootsFunc(), IdleTimeout: 100 * time.Millisecond,
		Certificate: func() (*tls.Certificate, error) {
			return issued[min(int(asked.Add(1))-1, 1)], nil
		}})
	defer d.Close()
	for range 3 {
		c, err := d.Dial(ctxT(t), f.target(up))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "x")
		c.Close()
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("Certificate asked %d times for one pooled connection", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		n := len(d.pools)
		d.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := d.Dial(ctxT(t), f.target(up))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "rotated")
	if n := asked.Load(); n != 2 {
		t.Fatalf("Certificate asked %d times, want 2 (one per connection)", n)
	}
}
