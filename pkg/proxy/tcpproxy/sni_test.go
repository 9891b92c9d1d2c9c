package tcpproxy

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestPeekServerNameReplays reads the SNI of a real TLS client, then hands
// the replaying connection to a TLS server: the handshake must complete as
// if nothing had read the ClientHello.
func TestPeekServerNameReplays(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	certPEM, keyPEM := ca.Issue(t, "alpha.example.com")
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sni, replay, err := peekServerName(c, 5*time.Second)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- sni
		srv := tls.Server(replay, &tls.Config{Certificates: []tls.Certificate{pair}})
		defer srv.Close()
		io.WriteString(srv, "hello over TLS\n")
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "alpha.example.com", RootCAs: ca.Pool})
	if err != nil {
		t.Fatalf("handshake after the peek failed: %v", err)
	}
	defer c.Close()
	if sni := <-got; sni != "alpha.example.com" {
		t.Errorf("peeked SNI %q", sni)
	}
	line := make([]byte, 15)
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "hello over TLS\n" {
		t.Errorf("read %q, %v", line, err)
	}
}

// TestPeekPlaintext: a connection that does not start with a ClientHello
// keeps every byte for the upstream.
func TestPeekPlaintext(t *testing.T) {
	a, b := net.Pipe()
	go func() { a.Write([]byte("PING\n")); a.Close() }()
	sni, replay, _ := peekServerName(b, time.Second)
	if sni != "" {
		t.Errorf("sni %q from plaintext", sni)
	}
	data, _ := io.ReadAll(replay)
	if string(data) != "PING\n" {
		t.Errorf("replayed %q", data)
	}
}
