package rbac

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// leaf makes a self-signed certificate with a SPIFFE URI SAN.
func leaf(t *testing.T, spiffe string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(spiffe)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var allowAlice = "action: ALLOW\npolicies:\n  p: {permissions: [{any: true}], principals: [{authenticated: {principalName: {exact: '" + alice + "'}}}]}\n"

// TestConnFromNetTLS: a TCP connection the proxy terminated TLS on
// carries the peer certificate's identity (ConnFromNet, used by the TCP
// path until the listener fills Conn), and authenticated matches on it.
func TestConnFromNetTLS(t *testing.T) {
	srvCert, cliCert := leaf(t, "spiffe://cluster.local/ns/default/sa/server"), leaf(t, alice)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	got := make(chan Input, 2)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequestClientCert})
			if tc.Handshake() == nil {
				conn := ConnFromNet(tc)
				got <- Input{Conn: &conn}
			}
			tc.Close()
		}
	}()
	e := engine(t, allowAlice)
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
		want  bool
	}{{"alice", []tls.Certificate{cliCert}, true}, {"no client certificate", nil, false}} {
		cc, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{InsecureSkipVerify: true, Certificates: c.certs, ServerName: "web.local"})
		if err != nil {
			t.Fatal(err)
		}
		cc.Handshake()
		in := <-got
		cc.Close()
		if allowed, _ := e.Eval(&in); allowed != c.want || in.Conn.ServerName != "web.local" || !in.Conn.LocalAddr.IsValid() {
			t.Errorf("%s: allowed %v, conn %+v", c.name, allowed, in.Conn)
		}
		if c.want && in.Conn.PeerPrincipal != alice {
			t.Errorf("%s: principal %q", c.name, in.Conn.PeerPrincipal)
		}
	}
}

// TestConnFromRequestTLS: without Stream.Conn, the filter reads the
// request's TLS state and addresses.
func TestConnFromRequestTLS(t *testing.T) {
	e := engine(t, allowAlice)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := ConnFromRequest(r)
		in := NewRequestInput(r, &conn, nil)
		if allowed, _ := e.Eval(&in); !allowed {
			w.WriteHeader(403)
		}
		io.WriteString(w, conn.PeerPrincipal+" "+conn.LocalAddr.String())
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	for _, c := range []struct {
		certs []tls.Certificate
		want  int
	}{{[]tls.Certificate{leaf(t, alice)}, 200}, {nil, 403}} {
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: c.certs}}}
		resp, err := cl.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 200 && string(b) != alice+" "+srv.Listener.Addr().String()) {
			t.Errorf("%d %q, want %d", resp.StatusCode, b, c.want)
		}
	}
}
