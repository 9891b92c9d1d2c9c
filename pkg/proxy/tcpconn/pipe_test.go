package tcpconn

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is a connected pair of TCP sockets on loopback.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := lis.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// counter counts the bytes through a connection, as istiometrics' wrapper.
type counter struct {
	net.Conn
	read, written atomic.Int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *counter) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// TestPipe: between two TCP connections (one behind a counting wrapper)
// the pipe moves a few MiB each way intact, passes each half-close on, and
// counts every byte.
func TestPipe(t *testing.T) {
	app, downIn := tcpPair(t)    // the app and the proxy's downstream side
	upOut, backend := tcpPair(t) // the proxy's upstream side and the backend
	down := &counter{Conn: downIn}
	type result struct {
		aToB, bToA uint64
	}
	res := make(chan result, 1)
	go func() {
		a, b := pipe(down, upOut, time.Minute)
		res <- result{a, b}
	}()
	up, back := make([]byte, 3<<20+17), make([]byte, 2<<20+5)
	rand.Read(up)
	rand.Read(back)
	got := make(chan []byte, 2)
	go func() { // the backend echoes nothing: it reads all, then answers
		b, _ := io.ReadAll(backend)
		got <- b
		backend.Write(back)
		backend.CloseWrite()
	}()
	go func() {
		app.Write(up)
		app.CloseWrite()
	}()
	if b := <-got; !bytes.Equal(b, up) {
		t.Fatalf("backend got %d bytes, want the %d sent", len(b), len(up))
	}
	b, err := io.ReadAll(app)
	if err != nil || !bytes.Equal(b, back) {
		t.Fatalf("app got %d bytes (%v), want %d", len(b), err, len(back))
	}
	select {
	case r := <-res:
		if r.aToB != uint64(len(up)) || r.bToA != uint64(len(back)) {
			t.Fatalf("pipe counted %d/%d, want %d/%d", r.aToB, r.bToA, len(up), len(back))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pipe did not end after both half-closes")
	}
	if down.read.Load() != int64(len(up)) || down.written.Load() != int64(len(back)) {
		t.Fatalf("wrapper counted %d read / %d written, want %d / %d", down.read.Load(), down.written.Load(), len(up), len(back))
	}
}

// TestPipeIdle: a connection with no traffic is closed after the idle
// timeout; one with a byte every fifth of it is not.
func TestPipeIdle(t *testing.T) {
	const idle = 400 * time.Millisecond
	t.Run("idle", func(t *testing.T) {
		app, down := tcpPair(t)
		up, _ := tcpPair(t)
		start := time.Now()
		done := make(chan struct{})
		go func() { pipe(down, up, idle); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * idle):
			t.Fatal("an idle connection was not closed")
		}
		if d := time.Since(start); d < idle {
			t.Fatalf("closed after %v, before the idle timeout %v", d, idle)
		}
		app.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := app.Read(make([]byte, 1)); err == nil {
			t.Fatal("the app's connection is still open")
		}
	})
	t.Run("trickle", func(t *testing.T) {
		app, down := tcpPair(t)
		up, backend := tcpPair(t)
		done := make(chan struct{})
		go func() { pipe(down, up, idle); close(done) }()
		go io.Copy(io.Discard, backend)
		for i := 0; i < 15; i++ { // 15 x idle/5 = 3 idle timeouts
			if _, err := app.Write([]byte{'x'}); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			select {
			case <-done:
				t.Fatalf("closed while a byte moved every %v", idle/5)
			case <-time.After(idle / 5):
			}
		}
	})
}
