package httpinspector

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDetect: Envoy's parseHttpHeader outcomes, including prefixes that
// still need bytes and bytes that rule HTTP out at once.
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		in    string
		proto string
		st    State
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP11, Done},
		{"POST /x?y=1 HTTP/1.1\n", HTTP11, Done},
		{"GET / HTTP/1.0\r\n", HTTP10, Done},
		{"GET / HTTP/2.0\r\n", HTTP10, Done}, // other versions: http/1.0, as Envoy
		{"GET /\r\n", HTTP10, Done},          // HTTP/0.9
		{"M-SEARCH * HTTP/1.1\r\n", HTTP11, Done},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", H2C, Done},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", H2C, Done},
		{"PRI * HTTP/2", "", Continue},
		{"G", "", Continue},
		{"GET", "", Continue},
		{"GET /abc", "", Continue},
		{"GET /abc HTTP/1.", "", Continue},
		{"port 9002\n", "", NotHTTP},
		{"p", "", NotHTTP},
		{"hello", "", NotHTTP},
		{"get / HTTP/1.1\r\n", "", NotHTTP},
		{"GETX / HTTP/1.1\r\n", "", NotHTTP},
		{"GET / HTTP/1.1x\r\n", "", NotHTTP},
		{"GET / HTTQ", "", NotHTTP},
		{"GET  / HTTP/1.1\r\n", "", NotHTTP},
		{"GET /\x01 HTTP/1.1\r\n", "", NotHTTP},
		{"\r\nGET / HTTP/1.1\r\n", "", NotHTTP},
		{"\x16\x03\x01\x02\x00\x01", "", NotHTTP}, // a TLS ClientHello
		{"GET", "", Continue},
	} {
		proto, st := Detect([]byte(c.in))
		if proto != c.proto || st != c.st {
			t.Errorf("Detect(%q) = %q, %v; want %q, %v", c.in, proto, st, c.proto, c.st)
		}
	}
}

// TestInspect over a real connection: the request line split across
// writes is found, the bytes are replayed, a line longer than
// MaxInspectSize is not HTTP, a close before a verdict is ErrClosed and a
// stall is ErrTimeout with the bytes kept.
func TestInspect(t *testing.T) {
	pair := func() (client, server net.Conn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close(); server.Close() })
		return client, server
	}
	c, s := pair()
	go func() {
		io.WriteString(c, "GET /a")
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, "bc HTTP/1.1\r\n\r\n")
	}()
	proto, replay, err := Inspect(s, time.Now().Add(5*time.Second))
	if err != nil || proto != HTTP11 {
		t.Fatalf("split request line: %q %v", proto, err)
	}
	got := make([]byte, len("GET /abc HTTP/1.1\r\n\r\n"))
	if _, err := io.ReadFull(replay, got); err != nil || string(got) != "GET /abc HTTP/1.1\r\n\r\n" {
		t.Errorf("replayed %q %v", got, err)
	}

	c, s = pair()
	go io.WriteString(c, "GET /"+strings.Repeat("a", MaxInspectSize))
	if proto, replay, err := Inspect(s, time.Now().Add(5*time.Second)); err != nil || proto != "" || replay == nil {
		t.Errorf("a first line over %d bytes: %q %v, want not HTTP", MaxInspectSize, proto, err)
	}

	c, s = pair()
	io.WriteString(c, "GE")
	c.Close()
	if _, _, err := Inspect(s, time.Now().Add(5*time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("closed after %q: %v, want ErrClosed", "GE", err)
	}

	c, s = pair()
	io.WriteString(c, "GE")
	_, replay, err = Inspect(s, time.Now().Add(50*time.Millisecond))
	if !errors.Is(err, ErrTimeout) || replay == nil {
		t.Fatalf("stalled: %v, want ErrTimeout and the replaying conn", err)
	}
	io.WriteString(c, "T\n")
	got = make([]byte, 4)
	if _, err := io.ReadFull(replay, got); err != nil || string(got) != "GET\n" {
		t.Errorf("after the timeout: %q %v", got, err)
	}
}

// BenchmarkDetect: the verdict on a typical request line.
func BenchmarkDetect(b *testing.B) {
	req := []byte("GET /productpage HTTP/1.1\r\nHost: productpage:9080\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		Detect(req)
	}
}
