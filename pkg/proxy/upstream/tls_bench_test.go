package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkTLSDial measures one upstream TLS connection of a cluster
// with a CA bundle and a client key pair (as a DestinationRule's MUTUAL
// mode gives it): dial, config, handshake, close. The in-process server's
// side of the handshake is counted too.
func BenchmarkTLSDial(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	certPEM, keyPEM := clientKeyPair(b)
	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, TLS: TLSOptions{Enabled: true,
		SNI: "example.com", CAPEM: string(caPEM), CertPEM: string(certPEM), KeyPEM: string(keyPEM)}}, nil)
	defer tr.Close()
	addr := srv.Listener.Addr().String()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := tr.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// clientKeyPair is a self-signed ECDSA certificate and its key, PEM.
func clientKeyPair(b *testing.B) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
