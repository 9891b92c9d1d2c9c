package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// testCA is the real mesh CA's gRPC service (certificates and the trust
// bundle watch) on loopback, behind the real token checks.
type testCA struct {
	addr   string
	ca     *ca.CA
	bundle *ca.BundleService
	// cp reaches it with the bootstrap token.
	cp ControlPlane
}

// serveCA runs a CA keeping its files in dir ("": in memory).
func serveCA(t *testing.T, trustDomain, dir string) *testCA {
	t.Helper()
	authority, err := ca.New(ca.Options{TrustDomain: trustDomain, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	tokens, err := ca.LoadOrCreateTokens(ca.TokenOptions{BootstrapFile: filepath.Join(state, ca.FileBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	auth := &ca.Authenticator{Tokens: tokens}
	g := grpc.NewServer(grpc.ChainStreamInterceptor(auth.StreamInterceptor(nil)))
	(&ca.Server{CA: authority, Auth: auth}).Register(g)
	bundle := &ca.BundleService{CA: authority, Auth: auth}
	bundle.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	addr := lis.Addr().String()
	return &testCA{addr: addr, ca: authority, bundle: bundle,
		cp: ControlPlane{Address: addr, TokenFile: filepath.Join(state, ca.FileBootstrapToken)}}
}

// runWorkload makes a workload identity and runs it until the test ends.
func runWorkload(t *testing.T, opts Options) *Workload {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func waitReady(t *testing.T, w *Workload) {
	t.Helper()
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no certificate issued")
	}
}

// The workload sends a CSR for its SPIFFE ID to the real CA and gets a
// certificate for exactly that identity, its key never leaving it, with
// the mesh root to verify peers.
func TestCertificateFromCA(t *testing.T) {
	tc := serveCA(t, "mesh.test", "")
	authority := tc.ca
	w := runWorkload(t, Options{ControlPlane: tc.cp, TrustDomain: "mesh.test", Namespace: "shop", ServiceAccount: "reviews"})
	waitReady(t, w)
	cert, err := w.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if w.ID() != "spiffe://mesh.test/ns/shop/sa/reviews" || len(cert.Leaf.URIs) != 1 || cert.Leaf.URIs[0].String() != w.ID() {
		t.Errorf("identity %s, certificate URIs %v", w.ID(), cert.Leaf.URIs)
	}
	if !w.key.PublicKey.Equal(cert.Leaf.PublicKey) {
		t.Error("the certificate is not for the workload's own key")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(authority.RootPEM())
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("certificate does not verify against the CA's root: %v", err)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: w.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("certificate does not verify against the roots the workload got: %v", err)
	}
}

// The certificate is renewed at half its lifetime, with a new one the
// TLS callbacks serve at once.
func TestRenewal(t *testing.T) {
	tc := serveCA(t, "cluster.local", "")
	w := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "shop", TTL: 2 * time.Second})
	waitReady(t, w)
	first, _ := w.Certificate()
	if life := time.Until(first.Leaf.NotAfter); life > 3*time.Second {
		t.Fatalf("certificate lives %v, asked for 2s", life)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, _ := w.Certificate()
		if cur.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
			if !cur.Leaf.NotAfter.After(first.Leaf.NotAfter) {
				t.Errorf("renewed certificate expires %v, not after %v", cur.Leaf.NotAfter, first.Leaf.NotAfter)
			}
			if time.Now().After(first.Leaf.NotAfter) {
				t.Errorf("renewed only after the old certificate expired")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("certificate not renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A CA of another trust domain refuses the CSR: no certificate, and the
// workload keeps asking rather than giving up.
func TestRefusedByCA(t *testing.T) {
	tc := serveCA(t, "other.test", "")
	w := runWorkload(t, Options{ControlPlane: tc.cp, TrustDomain: "mesh.test", Namespace: "shop"})
	select {
	case <-w.Ready():
		t.Fatal("a certificate was issued for another trust domain")
	case <-time.After(700 * time.Millisecond):
	}
	if _, err := w.Certificate(); err != ErrNotReady {
		t.Errorf("Certificate: %v, want ErrNotReady", err)
	}
	if err := w.VerifyPeer(nil, nil); err != ErrNotReady {
		t.Errorf("VerifyPeer without roots: %v, want ErrNotReady", err)
	}
}

// Peers are verified against the mesh roots and, when asked, their SPIFFE
// IDs, over a real mutual TLS handshake.
func TestVerifyPeer(t *testing.T) {
	tc := serveCA(t, "cluster.local", "")
	server := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "shop", ServiceAccount: "reviews"})
	client := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "web", ServiceAccount: "frontend"})
	other := serveCA(t, "cluster.local", "") // another root, same trust domain
	stranger := runWorkload(t, Options{ControlPlane: other.cp, Namespace: "web", ServiceAccount: "frontend"})
	for _, w := range []*Workload{server, client, stranger} {
		waitReady(t, w)
	}

	handshake := func(peer *Workload, allowed []string) error {
		srvCfg := &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return server.Certificate() },
			ClientAuth:     tls.RequireAnyClientCert,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				return server.VerifyPeer(raw, allowed)
			},
		}
		cliCfg := &tls.Config{
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return peer.Certificate() },
			InsecureSkipVerify:   true, // verified by VerifyPeerCertificate, as Envoy does with SAN matching
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				return peer.VerifyPeer(raw, []string{server.ID()})
			},
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		errc := make(chan error, 1)
		go func() {
			conn, err := lis.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			errc <- tls.Server(conn, srvCfg).Handshake()
		}()
		conn, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(conn, cliCfg)
		cliErr := c.Handshake()
		if cliErr == nil {
			// TLS 1.3: the server's verdict on the client certificate
			// arrives after the client's handshake; read to see it.
			c.Read(make([]byte, 1))
		}
		conn.Close()
		return errors.Join(<-errc, cliErr)
	}
	if err := handshake(client, []string{client.ID()}); err != nil {
		t.Errorf("mesh peer with an allowed identity refused: %v", err)
	}
	if err := handshake(client, nil); err != nil {
		t.Errorf("mesh peer with any identity allowed refused: %v", err)
	}
	if err := handshake(client, []string{"spiffe://cluster.local/ns/shop/sa/other"}); err == nil || !strings.Contains(err.Error(), "is none of") {
		t.Errorf("peer with an identity not allowed: %v", err)
	}
	if err := handshake(stranger, nil); err == nil || !strings.Contains(err.Error(), "not from the mesh CA") {
		t.Errorf("peer from another CA: %v", err)
	}
}
