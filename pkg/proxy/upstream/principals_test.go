package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// spiffeCert is a self-signed certificate naming id as its URI SAN, in
// PEM.
func spiffeCert(t *testing.T, id string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

const (
	clientID = "spiffe://mesh.test/ns/default/sa/sleep"
	serverID = "spiffe://mesh.test/ns/shop/sa/web"
)

// principalServer is an HTTPS server presenting serverID, asking for a
// client certificate when askClient.
func principalServer(t *testing.T, askClient bool) *httptest.Server {
	t.Helper()
	c, k := spiffeCert(t, serverID)
	pair, err := tls.X509KeyPair([]byte(c), []byte(k))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	if askClient {
		srv.TLS.ClientAuth = tls.RequireAnyClientCert
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestDialPrincipals: a TLS connection reports the first URI SAN of the
// certificate it sent and of the server's; a server that asks for no
// client certificate leaves ours empty, and plaintext has neither.
func TestDialPrincipals(t *testing.T) {
	cert, key := spiffeCert(t, clientID)
	tlsOpts := TLSOptions{Enabled: true, InsecureSkipVerify: true, CertPEM: cert, KeyPEM: key}
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	for _, c := range []struct {
		name string
		addr string
		tls  TLSOptions
		want Principals
	}{
		{"mutual", principalServer(t, true).Listener.Addr().String(), tlsOpts, Principals{Local: clientID, Peer: serverID}},
		{"server only", principalServer(t, false).Listener.Addr().String(), tlsOpts, Principals{Peer: serverID}},
		{"plaintext", plain.Listener.Addr().String(), TLSOptions{}, Principals{}},
	} {
		tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, TLS: c.tls}, nil)
		conn, got, err := tr.DialPrincipals(context.Background(), c.addr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		conn.Close()
		tr.Close()
		if got != c.want {
			t.Errorf("%s: principals %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestAdmissionPrincipals: a pooled request's admission carries the
// identities of the connection it was given, worked out at its
// handshake, and the request reading them allocates nothing.
func TestAdmissionPrincipals(t *testing.T) {
	cert, key := spiffeCert(t, clientID)
	srv := principalServer(t, true)
	c := poolCluster(t, Thresholds{MaxConnections: 10, MaxPendingRequests: 10, MaxRequests: 10, MaxRetries: 3},
		TransportOptions{TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true, CertPEM: cert, KeyPEM: key}},
		srv.Listener.Addr().String())
	h := c.Hosts[0]
	for i := range 2 { // a new connection, then the pooled one
		a, err := c.Admit(context.Background(), h, h.Address, false)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "http://"+h.Address+"/", nil)
		resp, err := a.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := a.Principals(); got != (Principals{Local: clientID, Peer: serverID}) {
			t.Errorf("request %d: principals %+v", i, got)
		}
		if n := testing.AllocsPerRun(10, func() { _ = a.Principals() }); n != 0 {
			t.Errorf("Principals allocates %v times", n)
		}
		a.Release()
	}
	if n := c.Stats.CxTotal.Load(); n != 1 {
		t.Errorf("%d connections, want the second request on the pooled one", n)
	}
}

// TestFirstURISANWithoutLeaf: a client certificate without a parsed
// Leaf is parsed to read its identity.
func TestFirstURISANWithoutLeaf(t *testing.T) {
	cert, key := spiffeCert(t, clientID)
	pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	pair.Leaf = nil
	if p := principalsOf(&tls.ConnectionState{}, &pair); p.Local != clientID || p.Peer != "" {
		t.Errorf("principals %+v", p)
	}
	if p := principalsOf(&tls.ConnectionState{}, new(tls.Certificate)); p != (Principals{}) {
		t.Errorf("no certificate sent: %+v", p)
	}
}
