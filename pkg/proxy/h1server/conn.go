package h1server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// A connection's states, for Shutdown.
const (
	stateIdle int32 = iota
	stateActive
	stateHijacked
	stateClosed
)

// conn is one served connection.
type conn struct {
	srv    *Server
	rwc    net.Conn
	opts   Options
	remote string
	ctx    context.Context
	cr     *connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	// cur is the request being served: a client lost cancels it.
	cur atomic.Pointer[response]
	// werr is the first write error (the connection is then dead).
	werr error

	// watch starts the background read of a request still served after
	// Server.WatchAfter; wmu guards what decides it.
	watch    *time.Timer
	wmu      sync.Mutex
	serving  bool // a request is in its handler, not hijacked
	bodyDone bool // its body was read to its end (or it had none)
	fired    bool // its watch fired

	// pend holds a response body's first bytes until the head is sent,
	// so a short body gets a Content-Length (net/http's 2 KiB).
	pend [2 << 10]byte
}

// serve reads and serves requests until the connection ends.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		if !handedOff && c.state.Load() != stateHijacked {
			c.rwc.Close()
		}
	}()
	c.watch = time.AfterFunc(time.Hour, c.watchFired)
	c.watch.Stop()
	if c.opts.H2C != nil && c.h2Preface() {
		handedOff = true
		c.opts.H2C(tcpconn.Buffered(c.rwc, c.br))
		return
	}
	for first := true; ; first = false {
		if !c.awaitRequest(first) {
			return
		}
		w, ok := c.readRequest()
		if !ok {
			return
		}
		if !c.serveRequest(w) {
			return
		}
		if w.closeAfter || c.werr != nil || c.srv.draining.Load() {
			if w.unreadBody {
				c.closeWriteAndWait()
			}
			return
		}
		c.state.Store(stateIdle)
	}
}

// awaitRequest waits for a request's first byte: idle (IdleTimeout), or
// the first request (ReadHeaderTimeout from the connection's start, as
// net/http). It reports false when the connection is to end.
func (c *conn) awaitRequest(first bool) bool {
	if c.br.Buffered() == 0 {
		d := c.srv.IdleTimeout
		if first {
			d = c.srv.ReadHeaderTimeout
		}
		if d > 0 {
			c.rwc.SetReadDeadline(time.Now().Add(d))
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	// The head's deadline runs from its first byte (a pipelined request's
	// bytes may already be here).
	if d := c.srv.ReadHeaderTimeout; d > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.rwc.SetReadDeadline(time.Time{})
	}
	if !first {
		// Fewer than 4 bytes before the client's close is not a request
		// worth an answer (net/http's server peeks 4 the same way).
		if _, err := c.br.Peek(4); err != nil {
			return false
		}
	}
	return c.state.CompareAndSwap(stateIdle, stateActive) // false: closed by Shutdown while idle
}

// h2Preface reports whether the connection opens with the HTTP/2 client
// preface (h2c with prior knowledge), peeking no further than the bytes
// agree with it.
func (c *conn) h2Preface() bool {
	if d := c.srv.ReadHeaderTimeout; d > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(d))
		defer c.rwc.SetReadDeadline(time.Time{})
	}
	for n := 1; ; {
		if _, err := c.br.Peek(n); err != nil {
			return false
		}
		b, _ := c.br.Peek(min(c.br.Buffered(), len(http2Preface)))
		if string(b) != http2Preface[:len(b)] {
			return false
		}
		if len(b) == len(http2Preface) {
			return true
		}
		n = len(b) + 1
	}
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// serveRequest runs the handler on one request and finishes its response.
// It reports false when the connection was hijacked or must end at once.
func (c *conn) serveRequest(w *response) (keep bool) {
	c.cur.Store(w)
	c.wmu.Lock()
	c.serving, c.fired = true, false
	c.bodyDone = w.body == nil
	c.wmu.Unlock()
	c.watch.Reset(c.srv.watchAfter())
	defer func() {
		c.cur.Store(nil)
		w.cancel()
		if p := recover(); p != nil {
			c.unwatch()
			if p != http.ErrAbortHandler {
				c.srv.logger().Error("http handler panicked", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			keep = false
		}
	}()
	h := c.srv.Handler
	if w.req.RequestURI == "*" && w.req.Method == http.MethodOptions {
		h = optionsHandler // as net/http's server (globalOptionsHandler)
	}
	h.ServeHTTP(w, w.req)
	if c.state.Load() == stateHijacked {
		return false // Hijack ended the watch
	}
	c.unwatch() // before finish, which may read the rest of the body
	w.finish()
	return true
}

// watchFired is the watch timer: the request is still served, so its
// client is watched, once its body is read.
func (c *conn) watchFired() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.fired = true
	if c.serving && c.bodyDone {
		c.cr.startBackgroundRead()
	}
}

// bodyEnded is called when the request body reaches its end.
func (c *conn) bodyEnded() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bodyDone = true
	if c.serving && c.fired {
		c.cr.startBackgroundRead()
	}
}

// unwatch ends the watch of the current request: no background read
// starts after it, and one running is stopped.
func (c *conn) unwatch() {
	c.watch.Stop()
	c.wmu.Lock()
	c.serving = false
	c.wmu.Unlock()
	c.cr.abortPendingRead()
}

// clientLost is called when a read of the connection fails: the request
// being served (if any) is cancelled, as net/http's server does.
func (c *conn) clientLost() {
	if w := c.cur.Load(); w != nil {
		w.cancel()
	}
}

// readRequest reads and checks the next request. A bad one is answered
// (400, 431, 501 or 505, as net/http's server answers) and ends the
// connection.
func (c *conn) readRequest() (*response, bool) {
	c.cr.beginHead(c.br, c.srv.maxHeaderBytes()+4096) // bufio's read-ahead, as net/http
	req, err := http.ReadRequest(c.br)
	tooLarge, hosts, host := c.cr.endHead()
	if err != nil {
		switch {
		case tooLarge:
			c.reject("431 Request Header Fields Too Large", "")
		case errors.Is(err, io.EOF), isTimeout(err):
			// The client closed, or sent nothing in time: closed quietly.
		case strings.Contains(err.Error(), "unsupported transfer encoding"):
			c.reject("501 Not Implemented", "unsupported transfer encoding")
		default:
			c.reject("400 Bad Request", "")
		}
		return nil, false
	}
	c.rwc.SetReadDeadline(time.Time{})
	if msg, code := checkRequest(req, hosts, host); code != "" {
		c.reject(code, msg)
		return nil, false
	}
	req.RemoteAddr = c.remote
	req.TLS = c.opts.TLS
	ctx, cancel := context.WithCancel(c.ctx)
	w := &response{c: c, req: req.WithContext(ctx), cancel: cancel, header: make(http.Header), contentLength: -1}
	w.closeAfter = req.Close
	if req.Body != nil && req.Body != http.NoBody {
		w.reqBody = requestBody{src: req.Body, w: w, parsed: req}
		if req.Header.Get("Expect") != "" {
			if !expectsContinue(req) {
				c.reject("417 Expectation Failed", "")
				return nil, false
			}
			w.reqBody.expectContinue = req.ProtoAtLeast(1, 1)
		}
		w.body = &w.reqBody
		w.req.Body = w.body
	} else if req.Header.Get("Expect") != "" && !expectsContinue(req) {
		c.reject("417 Expectation Failed", "")
		return nil, false
	}
	return w, true
}

// checkRequest makes net/http's server's checks of a parsed request
// (server.go readRequest), given the head's count of Host lines and the
// first one's value (http.ReadRequest drops the field); it returns the
// reason and the status line. RFC 9112 3.2: a request with no Host (in
// HTTP/1.1) or more than one is refused with 400.
func checkRequest(req *http.Request, hosts int, host string) (string, string) {
	if req.ProtoMajor != 1 {
		return "", "505 HTTP Version Not Supported"
	}
	switch {
	case req.ProtoAtLeast(1, 1) && hosts == 0 && req.Method != http.MethodConnect:
		return "missing required Host header", "400 Bad Request"
	case hosts > 1:
		return "too many Host headers", "400 Bad Request"
	case hosts == 1 && (len(host) >= maxHostValue || !httpguts.ValidHostHeader(host)):
		return "malformed Host header", "400 Bad Request"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name", "400 Bad Request"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value", "400 Bad Request"
			}
		}
	}
	return "", ""
}

func expectsContinue(req *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reject answers a request the server refuses and closes, as net/http's
// server does: the status line, a plain-text body naming it (and the
// reason), Connection: close.
func (c *conn) reject(status, reason string) {
	body := status
	if reason != "" {
		body += ": " + reason
	}
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.rwc, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
	c.closeWriteAndWait()
}

// closeWriteAndWait half-closes the connection and waits a little before
// it is closed, so the client reads the response before unread request
// bytes make the kernel reset it (net/http's closeWriteAndWait).
func (c *conn) closeWriteAndWait() {
	c.bw.Flush()
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	d := c.srv.rstDelay
	if d == 0 {
		d = rstAvoidanceDelay
	}
	time.Sleep(d)
}

// checkWriter is the connection as its buffered writer writes to it: the
// first error is kept and cancels the request being served (net/http's
// checkConnErrorWriter).
type checkWriter struct{ c *conn }

func (w checkWriter) Write(p []byte) (int, error) {
	n, err := w.c.rwc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		if r := w.c.cur.Load(); r != nil {
			r.cancel()
		}
	}
	return n, err
}

// optionsHandler answers "OPTIONS *" (the server's own options), as
// net/http's server does unless DisableGeneralOptionsHandler.
var optionsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		// net/http reads a little of a body here and lets the connection
		// close; so does the unread-body rule in finish.
		io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
})
