package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-mesh/sluice/pkg/proxy/h1parse"
)

// h1Conn is one HTTP/1.1 connection of a host pool, driven on the
// requesting goroutine: RoundTrip writes the request and reads the
// response head itself, and the response body is read by whoever reads it.
// net/http's persistConn runs a read goroutine and a write goroutine per
// connection and hands every request to both and the response back (two
// goroutine hand-offs and about a dozen allocations per request: issue
// #12's profile); the pool already serialises a connection's requests, so
// nothing here needs them. A request body is written by another goroutine
// only when it is large or of unknown length, so a server answering before
// it has read the body is heard (as net/http's writeLoop allows).
//
// Parsing is h1parse's for the usual response (a final status with a
// Content-Length, whole in the first read), net/http's own for every
// other (http.ReadResponse: status line, headers, Content-Length, chunked
// and close-delimited bodies, trailers, HEAD and 1xx rules); writing is h1write.go. Behaviour follows net/http's
// Transport where Envoy has no opinion, Envoy's where it does: an idle
// connection the server closed is found before it is used (Envoy sees the
// close on its event loop; net/http's read goroutine does), response
// headers are bounded (Envoy's max_response_headers_kb, 60 KiB), and a
// response body abandoned before its end closes the connection (Envoy
// resets the upstream stream).
type h1Conn struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	// rd reads the connection for br, bounding the response head.
	rd h1Reader
	// closeAfter: every request asks the server to close
	// (max_requests_per_connection 1, net/http's DisableKeepAlives).
	closeAfter bool
	// used: the connection carried a request; idleAt is when its last
	// exchange ended (it is probed before the next one after h1ProbeIdle).
	used   bool
	idleAt time.Time
	// busy: a request is on the connection until its response ends.
	busy atomic.Bool
	// err is why the connection is unusable (nil while it is usable).
	err       atomic.Pointer[error]
	closeOnce sync.Once
	// raw is the connection's socket (under TLS too), peeked (MSG_PEEK,
	// non-blocking) by idleAlive through peekFn, which sets peeked: bytes
	// waiting, 0 for the server's FIN, -1 for none; tls: the bytes are
	// TLS records (see idleAlive).
	raw    syscall.RawConn
	peekFn func(fd uintptr) bool
	peeked int
	tls    bool
	// interrupt wakes a blocked read or write when a request's context
	// ends (made once: a method value allocates).
	interrupt func()
}

// Limits of an HTTP/1.1 response head. Envoy's default
// max_response_headers_kb is 60 (and max_response_headers_count 100, which
// net/http's parser does not count); net/http skips at most 5 1xx
// responses before the final one (transport.go max1xxResponses).
const (
	h1MaxResponseHead = 60 << 10
	h1Max1xx          = 5
	// h1InlineBody: a request body of known length up to this is written
	// with its headers before the response is read; a server cannot block
	// on it (socket buffers hold it) even if it answers first.
	h1InlineBody = 64 << 10
	// h1ReadBuffer and h1WriteBuffer size a connection's buffers: the
	// write buffer holds the headers and a small body (the router reads
	// bodies up to 4 KiB whole), so one write carries both.
	h1ReadBuffer  = 4 << 10
	h1WriteBuffer = 8 << 10
	// h1ProbeIdle: a connection idle this long is peeked before it is
	// used. A busy connection is not: the peek was 4% of a sidecar's CPU
	// at its maximum rate (bench -profile), and a server closing a
	// connection it just answered on without "Connection: close" is
	// rarer than one closing it after an idle timeout (seconds: Node's 5
	// s, nginx's 75 s; a reused connection that fails before any answer
	// is still retried for a replayable request).
	h1ProbeIdle = 50 * time.Millisecond
)

var (
	// errServerClosedIdle: the server closed the idle connection before
	// it was used; nothing was sent, so any request may go on another.
	errServerClosedIdle = errors.New("upstream: server closed idle connection")
	errH1Closed         = errors.New("upstream: connection closed")
	errH1Busy           = errors.New("upstream: HTTP/1.1 connection already carries a request")
	errH1HeadTooLarge   = fmt.Errorf("upstream: response headers larger than %d bytes", h1MaxResponseHead)
	// aLongTimeAgo is a deadline in the past: it wakes blocked I/O.
	aLongTimeAgo = time.Unix(1, 0)
)

// h1Reader reads the connection for its bufio.Reader, bounding the
// response head: remain is what may still be read before the head ends.
type h1Reader struct {
	conn   net.Conn
	remain int64
}

func (r *h1Reader) Read(p []byte) (int, error) {
	if r.remain <= 0 {
		return 0, errH1HeadTooLarge
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.conn.Read(p)
	r.remain -= int64(n)
	return n, err
}

func newH1Conn(conn net.Conn, closeAfter bool) *h1Conn {
	c := &h1Conn{conn: conn, closeAfter: closeAfter}
	c.rd = h1Reader{conn: conn, remain: 1<<63 - 1}
	c.br = bufio.NewReaderSize(&c.rd, h1ReadBuffer)
	c.bw = bufio.NewWriterSize(conn, h1WriteBuffer)
	c.interrupt = func() { c.conn.SetDeadline(aLongTimeAgo) }
	if sc, isTLS := socketOf(conn); sc != nil {
		c.tls = isTLS
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			var b [1]byte
			c.peekFn = func(fd uintptr) bool {
				n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				switch {
				case err == unix.EAGAIN:
					c.peeked = -1
				case err != nil:
					c.peeked = 0
				default:
					c.peeked = n
				}
				return true
			}
		}
	}
	return c
}

// Available is 1 while the connection can take a request (as
// http.ClientConn reports for HTTP/1.1), InFlight the requests on it.
func (c *h1Conn) Available() int {
	if c.busy.Load() || c.Err() != nil {
		return 0
	}
	return 1
}

func (c *h1Conn) InFlight() int {
	if c.busy.Load() {
		return 1
	}
	return 0
}

// Err is why the connection cannot be used (nil while it can).
func (c *h1Conn) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close closes the connection; a request on it fails.
func (c *h1Conn) Close() error {
	c.fail(errH1Closed)
	return nil
}

// fail records why the connection is unusable (the first reason stays)
// and closes it.
func (c *h1Conn) fail(err error) {
	c.err.CompareAndSwap(nil, &err)
	c.closeOnce.Do(func() { c.conn.Close() })
}

// idleAlive reports whether an idle connection can still be used: the
// server has not closed it, nor sent anything unasked. The socket is
// peeked without blocking (one system call; a read with a deadline already
// past would not even try, Go's poller refuses it first). On TLS, bytes
// waiting may be a TLS 1.3 session ticket, which is no reason to drop the
// connection: crypto/tls reads them for up to a millisecond, and only a
// close (close_notify, EOF) or data condemns it.
func (c *h1Conn) idleAlive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return c.readIdle()
	}
	c.peeked = 0
	if c.raw.Read(c.peekFn) != nil {
		return false
	}
	switch {
	case c.peeked < 0: // EAGAIN: nothing waiting
		return true
	case c.peeked == 0 || !c.tls: // FIN, an error, or bytes unasked
		return false
	}
	return c.readIdle()
}

// readIdle lets the connection's reader take what is waiting for a
// millisecond: alive if that ends in the deadline, not in data or an
// error (a timeout leaves a TLS connection usable: crypto/tls keeps only
// permanent errors).
func (c *h1Conn) readIdle() bool {
	c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.br.Peek(1)
	c.conn.SetReadDeadline(time.Time{})
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// afterFuncer is package context's interface of a context that runs a
// function when it ends (h1server's request contexts are one). Asked
// directly, such a context registers the connection's interrupt with one
// allocation; context.AfterFunc would make five.
type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// RoundTrip sends req and reads the response head. The connection stays
// busy until the response body is read to its end or closed; it is then
// reusable unless either side asked to close it or the exchange failed.
func (c *h1Conn) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := c.Err(); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	if !c.busy.CompareAndSwap(false, true) {
		closeRequestBody(req)
		return nil, errH1Busy
	}
	// Bytes already buffered past the last response are always refused
	// (net/http's "unsolicited response on idle channel"); the socket is
	// peeked after h1ProbeIdle.
	if c.used && (c.br.Buffered() > 0 || time.Since(c.idleAt) >= h1ProbeIdle && !c.idleAlive()) {
		c.fail(errServerClosedIdle)
		closeRequestBody(req)
		return nil, errServerClosedIdle
	}
	c.used = true
	ctx := req.Context()
	var stop func() bool
	if af, ok := ctx.(afterFuncer); ok {
		stop = af.AfterFunc(c.interrupt)
	} else {
		stop = context.AfterFunc(ctx, c.interrupt)
	}
	ex := &h1Exchange{c: c, req: req}
	resp, err := c.exchange(ex)
	if err != nil {
		stop()
		c.fail(err)
		if ex.written != nil {
			// As net/http, wait for the body's writer (its writes fail now)
			// so the caller may reuse the request.
			<-ex.written
		}
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, err
	}
	ex.stop, ex.ctx = stop, ctx
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection is the tunnel now: the request's context no
		// longer bounds it (net/http drops its canceller for an upgrade),
		// and it never returns to the pool.
		if !stop() {
			c.fail(ctx.Err())
			return nil, ctx.Err()
		}
		resp.Body = &h1Upgraded{c: c}
		return resp, nil
	}
	if resp.Body == http.NoBody && ex.written == nil {
		ex.finish(true)
		return resp, nil
	}
	ex.body = resp.Body
	resp.Body = ex
	return resp, nil
}

// exchange writes ex's request and reads its response head, skipping 1xx
// answers.
func (c *h1Conn) exchange(ex *h1Exchange) (*http.Response, error) {
	req := ex.req
	inline := req.Body == nil || req.Body == http.NoBody ||
		req.ContentLength > 0 && req.ContentLength <= h1InlineBody
	if err := writeRequestHead(c.bw, req, c.closeAfter); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	if inline {
		if err := writeRequestBody(c.bw, req); err != nil {
			return nil, err
		}
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
	} else {
		ex.written = make(chan error, 1)
		go func() {
			err := writeRequestBody(c.bw, req)
			if err == nil {
				err = c.bw.Flush()
			}
			ex.written <- err
		}()
	}
	c.rd.remain = h1MaxResponseHead
	defer func() { c.rd.remain = 1<<63 - 1 }()
	for n := 0; ; n++ {
		resp, err := c.readResponse(ex)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code >= 200 || code == http.StatusSwitchingProtocols {
			ex.reuse = !resp.Close && !req.Close && !c.closeAfter
			return resp, nil
		}
		if n == h1Max1xx {
			return nil, fmt.Errorf("upstream: more than %d 1xx responses", h1Max1xx)
		}
	}
}

// readResponse reads a response head: from the bytes the first read
// brought when they hold a whole head of h1parse's common shape (a final
// status with a Content-Length; a few allocations instead of textproto's
// one per line and value), else with http.ReadResponse, which reads the
// rest of any head and judges every unusual one.
func (c *h1Conn) readResponse(ex *h1Exchange) (*http.Response, error) {
	if _, err := c.br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse
		}
		return nil, err
	}
	buf, _ := c.br.Peek(c.br.Buffered())
	h, ok := h1parse.Parse(buf)
	var parsed http.Response
	if !ok || !h.Response(&parsed, ex.req.Method) {
		return http.ReadResponse(c.br, ex.req)
	}
	c.br.Discard(h.Len)
	resp := new(http.Response)
	*resp = parsed
	resp.Request = ex.req
	resp.Body = http.NoBody
	if resp.ContentLength > 0 {
		ex.fixed = h1parse.Body{R: c.br, N: resp.ContentLength}
		resp.Body = &ex.fixed
	}
	return resp, nil
}

// h1Exchange is one request's response body: it ends the exchange when
// read to its end or closed.
type h1Exchange struct {
	c    *h1Conn
	req  *http.Request
	body io.Reader
	// fixed is body's storage for a response readResponse parsed.
	fixed h1parse.Body
	ctx   context.Context
	stop  func() bool
	// written receives the request body writer's result when the body is
	// written by its own goroutine.
	written chan error
	// reuse: neither side asked to close the connection.
	reuse bool
	ended atomic.Bool
}

func (ex *h1Exchange) Read(p []byte) (int, error) {
	n, err := ex.body.Read(p)
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		ex.finish(true)
		return n, err
	}
	if cerr := ex.ctx.Err(); cerr != nil {
		err = cerr
	}
	ex.finish(false)
	return n, err
}

// Close abandons the body if it was not read to its end: the connection
// closes (what is left of the response is not read).
func (ex *h1Exchange) Close() error {
	ex.finish(false)
	return nil
}

// finish ends the exchange once: the connection is reusable if the
// response was read whole, the request written whole, its context did not
// interrupt it, and neither side asked to close.
func (ex *h1Exchange) finish(whole bool) {
	if !ex.ended.CompareAndSwap(false, true) {
		return
	}
	c := ex.c
	ok := whole && ex.reuse
	if ex.stop != nil && !ex.stop() {
		ok = false // the context's interrupt ran: the deadline is in the past
	}
	if ex.written != nil {
		select {
		case err := <-ex.written:
			ok = ok && err == nil
		default:
			// The server answered before reading the whole body: the
			// rest cannot go on this connection (net/http waits 50 ms,
			// Envoy resets the stream). The writer's next write fails; it
			// closes the body then.
			ok = false
		}
	}
	if !ok {
		c.fail(errH1Closed)
	}
	c.idleAt = time.Now()
	c.busy.Store(false)
}

// closeRequestBody closes a request's body that will not be sent, as
// net/http's Transport does.
func closeRequestBody(req *http.Request) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body.Close()
	}
}

// h1Upgraded is a 101 response's body: the connection itself, read
// through what the response head left buffered (as net/http's
// readWriteCloserBody).
type h1Upgraded struct{ c *h1Conn }

func (u *h1Upgraded) Read(p []byte) (int, error) {
	if u.c.br.Buffered() > 0 {
		n := min(len(p), u.c.br.Buffered())
		return u.c.br.Read(p[:n])
	}
	return u.c.conn.Read(p)
}

func (u *h1Upgraded) Write(p []byte) (int, error) { return u.c.conn.Write(p) }

func (u *h1Upgraded) Close() error {
	u.c.fail(errH1Closed)
	return nil
}

// socketOf is the socket under a pool connection (through TLS and the
// pool's counting wrapper), and whether TLS is on it.
func socketOf(c net.Conn) (sc syscall.Conn, isTLS bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c, isTLS = tc.NetConn(), true
	}
	if tc, ok := c.(*trackedConn); ok {
		c = tc.Conn
	}
	sc, _ = c.(syscall.Conn)
	return sc, isTLS
}
