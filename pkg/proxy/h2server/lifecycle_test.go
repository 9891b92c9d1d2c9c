package h2server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Shutdown with a stream in flight: the client is sent GOAWAY (NO_ERROR,
// the stream not refused), a new connection is refused or closed without
// being served, the stream's response completes, Shutdown returns, and
// the connection is closed.
func TestShutdownGraceful(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		started, release := make(chan struct{}), make(chan struct{})
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-release
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "done")
		}), config{})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, true, get("/"))
		within(t, 3*time.Second, started, "the handler to start")

		shutdown := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ts.Shutdown(ctx)
			close(shutdown)
		}()
		if !rc.waitFor(func() bool { return rc.goAway != nil }) {
			close(release)
			t.Fatalf("no GOAWAY: %v; frames:\n  %s", rc.readErr, rc.dump())
		}
		if g := rc.goAway; g.Code != http2.ErrCodeNo || g.LastStreamID < 1 {
			t.Errorf("GOAWAY %v last stream %d, want NO_ERROR and at least 1", g.Code, g.LastStreamID)
		}
		o := newConnOutcome(t, ts.Addr)
		if o != "refused" && o != "closed" {
			t.Errorf("a new connection during shutdown: %s", o)
		}
		t.Logf("a new connection during shutdown: %s", o)
		close(release)
		if o := rc.wait(1); o != "status 200" || rc.body(1) != "done" {
			t.Errorf("the in-flight stream: %q %q; frames:\n  %s", o, rc.body(1), rc.dump())
		}
		within(t, 5*time.Second, shutdown, "Shutdown to return")
		if !rc.waitClosed() {
			t.Errorf("the connection is still open after Shutdown; frames:\n  %s", rc.dump())
		}
	})
}

// newConnOutcome dials addr and asks for /: "refused" if it cannot
// connect, "closed" if the connection ends without an answer, or the
// stream's outcome.
func newConnOutcome(t *testing.T, addr string) string {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "refused"
	}
	defer c.Close()
	rc := newRawConn(t, c)
	rc.timeout = 3 * time.Second
	io.WriteString(c, http2.ClientPreface)
	rc.writeSettings()
	rc.writeHeaders(1, true, get("/"))
	o := rc.wait(1)
	if o == "GOAWAY NO_ERROR" && rc.waitClosed() {
		return "closed"
	}
	return o
}

// IdleTimeout closes a connection that has had no stream that long,
// with GOAWAY NO_ERROR first; a stream that runs longer than it keeps
// the connection open.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(2 * idle)
			}
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}), config{IdleTimeout: idle})
		rc := dialHandshake(t, ts.Addr)
		rc.writeHeaders(1, true, get("/slow"))
		if o := rc.wait(1); o != "status 200" {
			t.Fatalf("a stream longer than IdleTimeout: %q; frames:\n  %s", o, rc.dump())
		}
		begin := time.Now()
		if !rc.waitClosed() {
			t.Fatalf("not closed after IdleTimeout; frames:\n  %s", rc.dump())
		}
		if rc.goAway == nil || rc.goAway.Code != http2.ErrCodeNo {
			t.Errorf("closed without GOAWAY NO_ERROR; frames:\n  %s", rc.dump())
		}
		t.Logf("closed %v after the last stream", time.Since(begin))
	})
}

// closedWithin writes what to a new connection and reads until the
// server closes it; false if it is still open after d.
func closedWithin(t *testing.T, addr string, what []byte, d time.Duration) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(what)
	c.SetReadDeadline(time.Now().Add(d))
	_, err = io.Copy(io.Discard, c)
	return !isTimeout(err)
}

// ReadHeaderTimeout bounds the client preface: a client that sends
// nothing, or part of it, is closed.
func TestReadHeaderTimeout(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(dumpHandler), config{ReadHeaderTimeout: 200 * time.Millisecond})
		if !closedWithin(t, ts.Addr, nil, 3*time.Second) {
			t.Error("a silent client is still connected")
		}
		if !closedWithin(t, ts.Addr, []byte(http2.ClientPreface[:10]), 3*time.Second) {
			t.Error("a client that sent part of the preface is still connected")
		}
	})
}

// A client that does not start with the HTTP/2 preface is closed.
func TestWrongPreface(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		ts := startServer(t, kind, http.HandlerFunc(dumpHandler), config{})
		for _, p := range []string{
			"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
			"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n",
		} {
			if !closedWithin(t, ts.Addr, []byte(p), 3*time.Second) {
				t.Errorf("%q: still connected", p)
			}
		}
	})
}

// h2 over TLS (ALPN "h2"): the handler's request has its TLS state.
func TestTLS(t *testing.T) {
	cfg := config{TLS: true}
	forKinds(t, func(t *testing.T, kind string) {
		views := make(chan reqView, 1)
		ts := startServer(t, kind, viewHandler(views), cfg)
		res, err := client(t, cfg).Post(ts.url(cfg, "/tls?x=1"), "text/plain", stringsReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "ok" || res.Proto != "HTTP/2.0" {
			t.Errorf("%s %d %q", res.Proto, res.StatusCode, body)
		}
		if res.TLS == nil || res.TLS.NegotiatedProtocol != "h2" {
			t.Errorf("client TLS state %+v", res.TLS)
		}
		v := within(t, time.Second, views, "the handler's view")
		if !v.TLS || v.Body != "body" || v.URL != "/tls?x=1" || v.Host != ts.Addr {
			t.Errorf("handler saw %+v", v)
		}
	})
}
