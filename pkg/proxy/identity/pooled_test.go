package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// renewAndWait makes w renew now and waits for the new certificate.
func renewAndWait(t *testing.T, w *Workload) {
	t.Helper()
	before, _ := w.Certificate()
	w.renewNow <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cur, _ := w.Certificate(); cur.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not renewed", w.ID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A renewal on both sides drops no connection: the proxy's pooled
// upstream HTTP/2 connection (the real upstream pool, ISTIO_MUTUAL
// options) keeps carrying requests, the server keeps the inbound
// connection it accepted, and only a new connection presents the new
// certificates.
func TestRenewalKeepsPooledConnections(t *testing.T) {
	tc := serveCA(t, "cluster.local", "")
	server := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "shop", ServiceAccount: "reviews"})
	client := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "web", ServiceAccount: "frontend"})
	waitReady(t, server)
	waitReady(t, client)

	type seen struct{ remote, clientSerial string }
	var mu sync.Mutex
	var requests []seen
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			requests = append(requests, seen{r.RemoteAddr, r.TLS.PeerCertificates[0].SerialNumber.String()})
			mu.Unlock()
			io.WriteString(w, r.TLS.NegotiatedProtocol)
		}),
		TLSConfig: &tls.Config{
			GetCertificate:        func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return server.Certificate() },
			ClientAuth:            tls.RequireAnyClientCert,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return server.VerifyPeer(raw, nil) },
			NextProtos:            []string{"h2"},
		},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(lis, "", "")
	t.Cleanup(func() { srv.Close() })

	newPool := func() *upstream.Transport {
		return upstream.NewTransport(upstream.TransportOptions{HTTP2: true, Identity: client,
			TLS: upstream.TLSOptions{Enabled: true, Workload: true, MeshPeer: true, PeerIDs: server.ID()}}, nil)
	}
	send := func(pool *upstream.Transport) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+lis.Addr().String()+"/", nil)
		resp, err := pool.RoundTrip(req, false)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "h2" {
			t.Fatalf("want h2 over mTLS, got %q", body)
		}
	}
	pool := newPool()
	defer pool.Close()
	send(pool)
	renewAndWait(t, client)
	renewAndWait(t, server)
	send(pool)
	fresh := newPool()
	defer fresh.Close()
	send(fresh)

	mu.Lock()
	defer mu.Unlock()
	if requests[1].remote != requests[0].remote || requests[1].clientSerial != requests[0].clientSerial {
		t.Errorf("the pooled connection did not survive the renewal: %+v then %+v", requests[0], requests[1])
	}
	cur, _ := client.Certificate()
	if requests[2].remote == requests[0].remote || requests[2].clientSerial != cur.Leaf.SerialNumber.String() {
		t.Errorf("a new connection must present the renewed certificate: %+v, current serial %s", requests[2], cur.Leaf.SerialNumber)
	}
}

// New upstream connections resume the TLS session (as Envoy's upstream TLS
// does by default), and a resumed session is verified again: the client
// still reports its own identity on a resumed connection, and once the
// server's chain is no longer trusted (the bundle replaced) a session
// made before is refused like a full handshake.
func TestResumedSessionReverified(t *testing.T) {
	tc := serveCA(t, "cluster.local", "")
	server := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "shop", ServiceAccount: "reviews"})
	client := runWorkload(t, Options{ControlPlane: tc.cp, Namespace: "web", ServiceAccount: "frontend"})
	waitReady(t, server)
	waitReady(t, client)
	var mu sync.Mutex
	var resumed []bool
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			resumed = append(resumed, r.TLS.DidResume)
			mu.Unlock()
			io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
		}),
		TLSConfig: &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return server.Certificate() },
			ClientAuth:     tls.RequireAnyClientCert,
			VerifyConnection: func(cs tls.ConnectionState) error {
				return server.VerifyPeer([][]byte{cs.PeerCertificates[0].Raw}, nil)
			},
		},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(lis, "", "")
	t.Cleanup(func() { srv.Close() })
	// One request per connection: every request is a new handshake.
	pool := upstream.NewTransport(upstream.TransportOptions{MaxRequestsPerConnection: 1, Identity: client, ConnectTimeout: 5 * time.Second,
		TLS: upstream.TLSOptions{Enabled: true, Workload: true, MeshPeer: true, PeerIDs: server.ID()}}, nil)
	defer pool.Close()
	send := func() (string, error) {
		req, _ := http.NewRequest("GET", "http://"+lis.Addr().String()+"/", nil)
		resp, err := pool.RoundTrip(req, false)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for i := range 3 {
		if got, err := send(); err != nil || got != client.ID() {
			t.Fatalf("request %d: %q %v", i, got, err)
		}
	}
	mu.Lock()
	if len(resumed) != 3 || resumed[0] || !resumed[1] || !resumed[2] {
		t.Errorf("resumed %v, want a full handshake then resumptions", resumed)
	}
	mu.Unlock()
	conn, p, err := pool.DialPrincipals(context.Background(), lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if !conn.(*tls.Conn).ConnectionState().DidResume || p.Local != client.ID() || p.Peer != server.ID() {
		t.Errorf("resumed %v, principals %+v: want a resumption naming both identities", conn.(*tls.Conn).ConnectionState().DidResume, p)
	}
	conn.Close()

	other := serveCA(t, "cluster.local", "")
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(other.ca.RootPEM()) {
		t.Fatal("no root in the other CA's bundle")
	}
	client.setRoots(roots, other.ca.RootPEM())
	if got, err := send(); err == nil {
		t.Fatalf("a session resumed with a server the bundle no longer trusts: %q", got)
	}
}
