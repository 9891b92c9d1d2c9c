package hbone

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// mesh is a real mesh CA and the workload certificates it signed.
type mesh struct {
	ca    *ca.CA
	roots *x509.CertPool
}

func newMesh(t testing.TB, td string) *mesh {
	t.Helper()
	a, err := ca.New(ca.Options{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(a.RootPEM()) {
		t.Fatal("no roots")
	}
	return &mesh{ca: a, roots: roots}
}

// issue has the CA sign a CSR for spiffe://<td>/ns/<ns>/sa/<sa>.
func (m *mesh) issue(t testing.TB, ns, sa string) (*tls.Certificate, string) {
	t.Helper()
	id := ca.Identity(m.ca.TrustDomain(), ns, sa)
	u, _ := url.Parse(id)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := m.ca.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{PrivateKey: key}
	for _, p := range chain[:len(chain)-1] { // the last element is the trust bundle
		b, _ := pem.Decode([]byte(p))
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	return cert, id
}

func (m *mesh) rootsFunc() func() *x509.CertPool { return func() *x509.CertPool { return m.roots } }

func certFunc(c *tls.Certificate) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return c, nil }
}

// fixture: a mesh, a server workload serving HBONE on loopback, and a
// client workload's dialer counting its TCP connections.
type fixture struct {
	mesh     *mesh
	srv      *Server
	addr     string
	serverID string
	clientID string
	dialer   *Dialer
	dials    atomic.Int32
	closes   atomic.Int32
	// writes counts the client connections' Write calls on TCP.
	writes atomic.Int64
}

type fixtureOptions struct {
	handle      func(ctx context.Context, r *Request) (net.Conn, error)
	maxStreams  uint32
	idle        time.Duration
	drain       time.Duration
	handshake   time.Duration
	clientCert  *tls.Certificate // nil: one from the mesh
	clientRoots *x509.CertPool
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{mesh: newMesh(t, "cluster.local")}
	srvCert, srvID := f.mesh.issue(t, "ns-b", "server")
	f.serverID = srvID
	cliCert, cliID := f.mesh.issue(t, "ns-a", "client")
	if o.clientCert != nil {
		cliCert = o.clientCert
	}
	f.clientID = cliID
	if o.handle == nil {
		o.handle = dialAuthority
	}
	f.srv = NewServer(ServerOptions{Certificate: certFunc(srvCert), Roots: f.mesh.rootsFunc(),
		Handle: o.handle, MaxConcurrentStreams: o.maxStreams, DrainTimeout: o.drain,
		HandshakeTimeout: o.handshake, Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	roots := f.mesh.rootsFunc()
	if o.clientRoots != nil {
		roots = func() *x509.CertPool { return o.clientRoots }
	}
	f.dialer = NewDialer(DialerOptions{Certificate: certFunc(cliCert), Roots: roots, IdleTimeout: o.idle,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			f.dials.Add(1)
			return &countClose{Conn: &countWrites{Conn: c, n: &f.writes}, n: &f.closes}, nil
		}})
	t.Cleanup(func() {
		f.dialer.Close()
		f.srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *fixture) target(authority string) Target {
	return Target{Addr: f.addr, Authority: authority, PeerIDs: []string{f.serverID}, SourceID: f.clientID}
}

type countClose struct {
	net.Conn
	once sync.Once
	n    *atomic.Int32
}

func (c *countClose) Close() error {
	c.once.Do(func() { c.n.Add(1) })
	return c.Conn.Close()
}

// dialAuthority is a Handle that connects to the CONNECT's authority.
func dialAuthority(ctx context.Context, r *Request) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", r.Authority)
}

// serveTCP runs fn per accepted connection on a loopback listener.
func serveTCP(t testing.TB, fn func(c *net.TCPConn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fn(c.(*net.TCPConn))
			}()
		}
	}()
	return l.Addr().String()
}

// echo copies back until EOF, then half-closes.
func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// countWrites counts a connection's Write calls.
type countWrites struct {
	net.Conn
	n *atomic.Int64
}

func (c *countWrites) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}
