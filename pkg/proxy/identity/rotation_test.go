package identity

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// Renewal lands at half life, moved by at most the jitter ratio, as
// istio-agent's rotateTime.
func TestRotateTime(t *testing.T) {
	created := time.Now()
	expire := created.Add(100 * time.Second)
	seen := map[bool]bool{}
	for range 200 {
		d := rotateTime(created, expire, 0.5, 0.01)
		if d < 48*time.Second || d > 51*time.Second {
			t.Fatalf("renewal in %v, want 50s ± 1s", d)
		}
		seen[d < 49900*time.Millisecond] = true
	}
	if !seen[true] || !seen[false] {
		t.Error("jitter must move the renewal both ways")
	}
	if d := rotateTime(created.Add(-time.Hour), expire.Add(-time.Hour), 0.5, 0.01); d != 0 {
		t.Errorf("an expired certificate renews at once, got %v", d)
	}
}

// echoServer accepts mTLS connections with the server workload's
// callbacks and echoes lines.
func echoServer(t *testing.T, server *Workload) string {
	t.Helper()
	cfg := &tls.Config{
		GetCertificate:        func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return server.Certificate() },
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return server.VerifyPeer(raw, nil) },
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	return lis.Addr().String()
}

func dialMTLS(t *testing.T, client, server *Workload, addr string) (*tls.Conn, error) {
	t.Helper()
	return tls.Dial("tcp", addr, &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client.Certificate() },
		InsecureSkipVerify:   true, // verified below against the mesh roots and SPIFFE ID, as Envoy does
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return client.VerifyPeer(raw, []string{server.ID()})
		},
	})
}

func roundTrip(conn *tls.Conn, line string) error {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func servedSerial(conn *tls.Conn) string {
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// Root rotation pushed by the control plane: both workloads trust the new
// bundle and renew from the new root within seconds; a connection made
// before keeps working; new handshakes present certificates from the new
// root, which the peer verifies with the bundle.
func TestRootRotationPushed(t *testing.T) {
	dir := t.TempDir()
	tc := serveCA(t, "cluster.local", dir)
	server := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "shop", ServiceAccount: "reviews"})
	client := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "web", ServiceAccount: "frontend"})
	waitReady(t, server)
	waitReady(t, client)
	addr := echoServer(t, server)
	before, err := dialMTLS(t, client, server, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if err := roundTrip(before, "before"); err != nil {
		t.Fatal(err)
	}
	oldSerial := servedSerial(before)

	newRoot, err := ca.Rotate(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := tc.ca.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	tc.bundle.Publish()
	deadline := time.Now().Add(15 * time.Second)
	for _, w := range []*Workload{server, client} {
		for {
			cert, _ := w.Certificate()
			if cert.Leaf.CheckSignatureFrom(newRoot) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not renewed from the new root", w.ID())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(w.Certs().Certificates[0].CACert); n != 2 {
			t.Errorf("%s trusts %d roots, want the old and the new", w.ID(), n)
		}
	}
	if err := roundTrip(before, "after"); err != nil {
		t.Errorf("a connection made before the rotation broke: %v", err)
	}
	after, err := dialMTLS(t, client, server, addr)
	if err != nil {
		t.Fatalf("a new handshake after the rotation failed: %v", err)
	}
	defer after.Close()
	if err := roundTrip(after, "new"); err != nil {
		t.Fatal(err)
	}
	if servedSerial(after) == oldSerial {
		t.Error("the server still presents its certificate from before the rotation")
	}
	if after.ConnectionState().PeerCertificates[0].CheckSignatureFrom(newRoot) != nil {
		t.Error("the served certificate is not from the new root")
	}
}
