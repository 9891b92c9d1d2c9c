package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
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

// BenchmarkTLSResumption measures a new upstream TLS 1.3 connection with
// a client certificate (dial, handshake, first byte read, close) with
// session resumption off (the baseline, first) and on, as the transport
// now has it; it reports the resumed dial's time as a ratio to the full
// one's.
func BenchmarkTLSResumption(b *testing.B) {
	srvCert, srvKey := clientKeyPair(b)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		b.Fatal(err)
	}
	acceptEach(b, ln, func(c net.Conn) {
		c.Write([]byte("x")) // after the handshake: the ticket goes first
		c.Read(make([]byte, 1))
	})
	certPEM, keyPEM := clientKeyPair(b)
	var full float64
	for _, resume := range []bool{false, true} {
		b.Run(map[bool]string{false: "full", true: "resumed"}[resume], func(b *testing.B) {
			tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, TLS: TLSOptions{Enabled: true,
				InsecureSkipVerify: true, CertPEM: string(certPEM), KeyPEM: string(keyPEM)}}, nil)
			defer tr.Close()
			if _, err := tr.tlsConfig("x:1"); err != nil {
				b.Fatal(err)
			}
			if !resume {
				tr.tlsBase.cfg.ClientSessionCache = nil
			}
			addr := ln.Addr().String()
			buf := make([]byte, 1)
			b.ReportAllocs()
			for i := range b.N {
				c, err := tr.Dial(context.Background(), addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				if got := c.(*tls.Conn).ConnectionState().DidResume; got != (resume && i > 0) {
					b.Fatalf("dial %d: resumed %v", i, got)
				}
				c.Close()
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if !resume {
				full = ns
			} else if full > 0 {
				b.ReportMetric(ns/full, "x-full")
			}
		})
	}
}
