package tlsinspector

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
)

var testCfg = &dataplane.Inspector{Timeout: 5 * time.Second, MaxHelloSize: 16 << 10}

// TestInspectReplays reads the SNI and ALPN of a real TLS client, then hands
// the replaying connection to a TLS server: the handshake must complete as
// if nothing had read the ClientHello.
func TestInspectReplays(t *testing.T) {
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
		res, replay, err := Inspect(c, testCfg)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- fmt.Sprint(res.Transport(), " ", res.ServerName, " ", res.ALPN)
		srv := tls.Server(replay, &tls.Config{Certificates: []tls.Certificate{pair}})
		defer srv.Close()
		io.WriteString(srv, "hello over TLS\n")
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "Alpha.example.com.", RootCAs: ca.Pool, NextProtos: []string{"istio", "h2"}})
	if err != nil {
		t.Fatalf("handshake after the peek failed: %v", err)
	}
	defer c.Close()
	if sni := <-got; sni != "tls alpha.example.com [istio h2]" {
		t.Errorf("inspected %q", sni)
	}
	line := make([]byte, 15)
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "hello over TLS\n" {
		t.Errorf("read %q, %v", line, err)
	}
}

// TestInspectPlaintext: a connection that does not start with a
// ClientHello is raw_buffer at once and keeps every byte for the upstream.
func TestInspectPlaintext(t *testing.T) {
	a, b := net.Pipe()
	go func() { a.Write([]byte("PING\n")); a.Close() }()
	res, replay, err := Inspect(b, testCfg)
	if err != nil || res.TLS || res.Transport() != dataplane.TransportRawBuffer {
		t.Fatalf("plaintext inspected as %+v, %v", res, err)
	}
	data, _ := io.ReadAll(replay)
	if string(data) != "PING\n" {
		t.Errorf("replayed %q", data)
	}
}

// TestInspectTimeout: a client that sends nothing is closed after
// listener_filters_timeout, or taken as plaintext with
// continue_on_listener_filters_timeout.
func TestInspectTimeout(t *testing.T) {
	for _, cont := range []bool{false, true} {
		a, b := net.Pipe()
		start := time.Now()
		_, replay, err := Inspect(b, &dataplane.Inspector{Timeout: 50 * time.Millisecond, ContinueOnTimeout: cont})
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("inspect took %v", el)
		}
		if cont && (err != nil || replay == nil) || !cont && err != ErrClose {
			t.Errorf("continue=%v: err %v", cont, err)
		}
		a.Close()
		b.Close()
	}
}

// TestInspectBounded: a ClientHello larger than max_client_hello_size is
// not read past the bound; with close_connection_on_client_hello_parsing_errors
// the connection is closed.
func TestInspectBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, _, err = Inspect(c, &dataplane.Inspector{Timeout: 5 * time.Second, MaxHelloSize: 512, CloseOnParseError: true})
		done <- err
	}()
	// A long server name makes the ClientHello exceed 512 bytes.
	long := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example"
	go tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: long, InsecureSkipVerify: true, NextProtos: []string{strings.Repeat("p", 200), strings.Repeat("q", 200)}})
	select {
	case err := <-done:
		if err != ErrClose {
			t.Errorf("oversized ClientHello: err %v, want ErrClose", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("inspect did not stop at the size bound")
	}
}
