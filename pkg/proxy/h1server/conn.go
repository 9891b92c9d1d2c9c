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

	"github.com/sluice-mesh/sluice/pkg/proxy/h1parse"
	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
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
	// ctxEnds: ctx can be cancelled, so its requests' contexts are
	// context.WithCancel's (else serverconn.RequestContext).
	ctxEnds bool
	cr      *connReader
	br      *bufio.Reader
	bw      *bufio.Writer
	state   atomic.Int32
	// lastMethod is the last request's (see readRequest).
	lastMethod string
	// respHeader is the responses' header map (responseHeader).
	respHeader http.Header
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
		if w.closeAfter || c.werr != nil || c.srv.conns.Draining() {
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
		h = serverconn.OptionsHandler // as net/http's server (globalOptionsHandler)
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
	if c.lastMethod == http.MethodPost {
		// Blank lines after a POST's body are skipped: RFC 7230 3's
		// tolerance of old clients, as net/http's server (readRequest).
		peek, _ := c.br.Peek(4)
		c.br.Discard(leadingCRorLF(peek))
	}
	w := &response{c: c, header: c.responseHeader(), contentLength: -1}
	var ctx context.Context = &w.ctx
	if c.ctxEnds {
		ctx, w.stdCancel = context.WithCancel(c.ctx)
	} else {
		w.ctx.Context = c.ctx
	}
	req, msg, code := c.readBuffered(ctx, w)
	if req == nil && code == "" {
		req, msg, code = c.readStream(ctx, w)
	}
	if code == "" && req.Header.Get("Expect") != "" && !expectsContinue(req) {
		code = "417 Expectation Failed"
	}
	if code != "" {
		w.cancel()
		c.reject(code, msg)
		return nil, false
	}
	c.lastMethod = req.Method
	req.RemoteAddr = c.remote
	req.TLS = c.opts.TLS
	w.req = req
	w.closeAfter = req.Close
	if w.reqBody.src != nil {
		w.reqBody.expectContinue = expectsContinue(req) && req.ProtoAtLeast(1, 1)
		w.body = &w.reqBody
		req.Body = w.body
	}
	return w, true
}

// responseHeader is the next response's header map: the connection's
// one, emptied (a handler must not use its ResponseWriter after it
// returns, and a hijacked connection serves no more requests), so a
// request does not allocate one. A map that held more than
// maxReusedHeader fields is dropped, as clear keeps a map's size.
func (c *conn) responseHeader() http.Header {
	if c.respHeader == nil || len(c.respHeader) > maxReusedHeader {
		c.respHeader = make(http.Header)
	} else {
		clear(c.respHeader)
	}
	return c.respHeader
}

const maxReusedHeader = 32

// readBuffered reads a request whose head is already whole in the buffer
// and of h1parse's common shape: parsed there, with a few allocations,
// into what http.ReadRequest would make. It returns nil for any other
// head, having consumed nothing: readStream reads it. (Such a head is
// within the buffer's 4 KiB, so net/http's limit would not refuse it
// either.)
func (c *conn) readBuffered(ctx context.Context, w *response) (*http.Request, string, string) {
	buf, _ := c.br.Peek(c.br.Buffered())
	h, ok := h1parse.Parse(buf)
	var parsed http.Request
	if !ok || !h.Request(&parsed) {
		return nil, "", ""
	}
	c.br.Discard(h.Len)
	c.rwc.SetReadDeadline(time.Time{})
	req := parsed.WithContext(ctx) // the request's one allocation
	if msg, code := checkHost(req, h.Hosts, h.Host); code != "" {
		return req, msg, code // (names and values were checked by Parse)
	}
	req.Body = http.NoBody
	if req.ContentLength > 0 {
		w.reqLen = h1parse.Body{R: c.br, N: req.ContentLength}
		w.reqBody = requestBody{src: &w.reqLen, w: w}
	}
	return req, "", ""
}

// readStream reads a request with http.ReadRequest, the connection's
// reader bounding its head and counting its Host lines.
func (c *conn) readStream(ctx context.Context, w *response) (*http.Request, string, string) {
	c.cr.beginHead(c.br, c.srv.maxHeaderBytes()+4096) // bufio's read-ahead, as net/http
	req, err := http.ReadRequest(c.br)
	tooLarge, hosts, host := c.cr.endHead()
	if err != nil {
		switch {
		case tooLarge:
			return nil, "", "431 Request Header Fields Too Large"
		case errors.Is(err, io.EOF), isTimeout(err):
			// The client closed, or sent nothing in time: closed quietly.
			return nil, "", quietClose
		case strings.Contains(err.Error(), "unsupported transfer encoding"):
			return nil, "unsupported transfer encoding", "501 Not Implemented"
		default:
			return nil, "", "400 Bad Request"
		}
	}
	c.rwc.SetReadDeadline(time.Time{})
	if msg, code := checkHost(req, hosts, host); code != "" {
		return nil, msg, code
	}
	if msg, code := checkFields(req); code != "" {
		return nil, msg, code
	}
	if req.Body != nil && req.Body != http.NoBody {
		w.reqBody = requestBody{src: req.Body, w: w, parsed: req}
	}
	return req.WithContext(ctx), "", ""
}

// checkHost and checkFields make net/http's server's checks of a parsed
// request (server.go readRequest), given the head's count of Host lines
// and the first one's value (http.ReadRequest drops the field); they
// return the reason and the status line. RFC 9112 3.2: a request with no
// Host (in HTTP/1.1) or more than one is refused with 400.
func checkHost(req *http.Request, hosts int, host string) (string, string) {
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
	return "", ""
}

func checkFields(req *http.Request) (string, string) {
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

func leadingCRorLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// expectsContinue is net/http's Request.expectsContinue: the first Expect
// value holds "100-continue" between token boundaries (space, comma or
// tab; net/http header.go hasToken), case-insensitively.
func expectsContinue(req *http.Request) bool {
	const token = "100-continue"
	v := req.Header.Get("Expect")
	for i := 0; i+len(token) <= len(v); i++ {
		end := i + len(token)
		if (i == 0 || tokenBoundary(v[i-1])) && (end == len(v) || tokenBoundary(v[end])) &&
			h1parse.EqualFold(v[i:end], token) {
			return true
		}
	}
	return false
}

func tokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reject answers a request the server refuses and closes, as net/http's
// server does: the status line, a plain-text body naming it (and the
// reason), Connection: close. It goes after what the buffered writer
// still holds (the answers to pipelined requests before it).
func (c *conn) reject(status, reason string) {
	if status == quietClose {
		return
	}
	body := status
	if reason != "" {
		body += ": " + reason
	}
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
	c.closeWriteAndWait()
}

// quietClose is the "status" of a request never sent: the connection
// closes without an answer.
const quietClose = "-"

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
