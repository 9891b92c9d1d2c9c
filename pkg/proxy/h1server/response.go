package h1server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sluice-mesh/sluice/pkg/proxy/h1parse"
	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

// response is one request being served: its http.ResponseWriter (with
// Flush and Hijack for http.ResponseController) and its body.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	// ctx is req's context, unless the connection's context can end: then
	// it is context.WithCancel's, ended by stdCancel (serverconn.RequestContext).
	ctx       serverconn.RequestContext
	stdCancel context.CancelFunc
	body      *requestBody // nil: the request has none
	// reqBody is body's storage (one allocation per request), reqLen its
	// source for a request read by readBuffered.
	reqBody requestBody
	reqLen  h1parse.Body

	status        int
	wroteHeader   bool  // the final status is set
	chunked       bool  // the body is sent chunked
	contentLength int64 // declared or computed; -1: none
	written       int64
	npend         int // bytes held in c.pend
	// closeAfter ends the connection after this response; unreadBody:
	// request bytes were left unread (closed with closeWriteAndWait).
	closeAfter, unreadBody bool

	// headMu guards headerSent against the 100 Continue a body read on
	// another goroutine may write.
	headMu     sync.Mutex
	headerSent bool
}

func (w *response) Header() http.Header { return w.header }

// cancel ends the request's context.
func (w *response) cancel() {
	if w.stdCancel != nil {
		w.stdCancel()
		return
	}
	w.ctx.Cancel()
}

// WriteHeader sets the final status; a 1xx other than 101 is sent at once
// with the header so far (net/http since Go 1.19).
func (w *response) WriteHeader(code int) {
	if w.c.state.Load() == stateHijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.headMu.Lock()
		defer w.headMu.Unlock()
		if code == http.StatusContinue && w.reqBody.continueSent.Swap(true) {
			return
		}
		w.writeStatusLine(code)
		w.writeHeaderFields(w.header)
		w.c.bw.WriteString("\r\n")
		w.c.bw.Flush()
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.header.Del("Content-Length")
		}
	}
	if hasToken(w.header["Connection"], "close") {
		w.closeAfter = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.state.Load() == stateHijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.headerSent {
		if w.contentLength == -1 && w.npend+len(p) <= len(w.c.pend) {
			w.npend += copy(w.c.pend[w.npend:], p)
			return len(p), nil
		}
		w.sendHead(false)
	}
	return w.writeBody(p)
}

// writeBody writes p as the body (framed when chunked).
func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err == nil {
		err = w.c.werr
	}
	return n, err
}

// Flush sends the head (chunked, when no length is known) and whatever is
// buffered.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush reporting the connection's error.
func (w *response) FlushError() error {
	if w.c.state.Load() == stateHijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHead(false)
	}
	return w.c.bw.Flush()
}

// Hijack hands the connection to the handler: what was buffered from the
// client stays readable through the returned reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.state.Load() == stateHijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader && !w.headerSent {
		w.sendHead(false)
	}
	c.unwatch()
	c.cr.mu.Lock()
	c.cr.lost = nil
	c.cr.mu.Unlock()
	c.state.Store(stateHijacked)
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	c.rwc.SetDeadline(time.Time{})
	return c.rwc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc)), nil
}

// sendHead writes the status line and header. final: the handler has
// returned, so a body held in c.pend is all of it and gets a
// Content-Length. Otherwise a body of unknown length is chunked (HTTP/1.1)
// or delimited by the connection's close (HTTP/1.0).
func (w *response) sendHead(final bool) {
	w.headMu.Lock()
	defer w.headMu.Unlock()
	w.headerSent = true
	h := w.header
	delete(h, "Transfer-Encoding") // the framing is the server's
	trailers := len(h["Trailer"]) > 0
	computedLength := false
	if bodyAllowed(w.status) && w.req.Method != http.MethodHead && w.contentLength == -1 {
		switch {
		case final && !trailers:
			w.contentLength, computedLength = int64(w.npend), true
		case w.req.ProtoAtLeast(1, 1):
			w.chunked = true
		default:
			w.closeAfter = true
		}
	}
	if w.c.srv.conns.Draining() {
		w.closeAfter = true
	}
	w.writeStatusLine(w.status)
	w.writeHeaderFields(h)
	// What the server adds is written, not put in the handler's map (as
	// net/http's extra header).
	bw := w.c.bw
	switch {
	case w.closeAfter && w.req.ProtoAtLeast(1, 1):
		if !hasToken(h["Connection"], "close") {
			bw.WriteString("Connection: close\r\n")
		}
	case !w.closeAfter && !w.req.ProtoAtLeast(1, 1):
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(serverconn.Date())
		bw.WriteString("\r\n")
	}
	if computedLength {
		var b [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(b[:0], w.contentLength, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if w.npend > 0 {
		n := w.npend
		w.npend = 0
		w.writeBody(w.c.pend[:n])
	}
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if w.req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	var b [8]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// writeHeaderFields writes h's fields as net/http's Header.Write does:
// invalid names are left out, line breaks in values become spaces, and
// keys under http.TrailerPrefix wait for the trailer.
func (w *response) writeHeaderFields(h http.Header) {
	bw := w.c.bw
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		writeField(bw, k, vv)
	}
}

// writeField writes one field's lines: the values trimmed, line breaks in
// them made spaces (net/http's headerNewlineToSpace).
func writeField(bw *bufio.Writer, k string, vv []string) {
	for _, v := range vv {
		bw.WriteString(k)
		bw.WriteString(": ")
		writeValue(bw, v)
		bw.WriteString("\r\n")
	}
}

func writeValue(bw *bufio.Writer, v string) {
	v = textproto.TrimString(v)
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
}

// finish completes the response after the handler returned: the head if
// not sent, the chunked body's end and trailers, the request body's rest
// (drained up to maxPostHandlerReadBytes, else the connection ends).
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if b := w.body; b != nil && !b.done {
		if b.expectContinue && !b.continueSent.Load() {
			w.closeAfter = true // the client still waits to send it
		} else if !b.drain() {
			w.closeAfter, w.unreadBody = true, true
		}
	}
	if !w.headerSent {
		w.sendHead(true)
	}
	if w.chunked {
		w.writeTrailers()
	}
	if w.contentLength != -1 && w.written != w.contentLength && w.req.Method != http.MethodHead && bodyAllowed(w.status) {
		w.closeAfter = true // the answer is short: the client sees it cut
	}
	w.c.bw.Flush()
}

// writeTrailers ends a chunked body: the last chunk, then the declared
// trailers (Trailer header) and those under http.TrailerPrefix.
func (w *response) writeTrailers() {
	bw := w.c.bw
	bw.WriteString("0\r\n")
	for _, line := range w.header["Trailer"] {
		for _, k := range strings.Split(line, ",") {
			k = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(k))
			if !httpguts.ValidHeaderFieldName(k) {
				continue
			}
			writeField(bw, k, w.header[k])
		}
	}
	for k, vv := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		writeField(bw, name, vv)
	}
	bw.WriteString("\r\n")
}

// requestBody is a request's body as the handler reads it: the 100
// Continue is sent on its first read, its end starts the client watch
// (conn.bodyEnded), and Close does not drain it (finish decides).
type requestBody struct {
	src io.Reader
	// parsed is the request as http.ReadRequest made it (the handler's is
	// a copy carrying the request's context); nil for readBuffered's,
	// whose body has no trailers.
	parsed         *http.Request
	w              *response
	expectContinue bool
	// continueSent: the 100 went out (the handler's WriteHeader(100) or
	// a body read, which may run on another goroutine).
	continueSent atomic.Bool
	done, closed bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expectContinue && !b.continueSent.Load() {
		b.sendContinue()
	}
	n, err := b.src.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		// The body's trailers went to the request http.ReadRequest made
		// (a declared trailer's map is shared; an undeclared one is new).
		if b.parsed != nil {
			b.w.req.Trailer = b.parsed.Trailer
		}
		b.w.c.bodyEnded()
	}
	return n, err
}

func (b *requestBody) sendContinue() {
	w := b.w
	w.headMu.Lock()
	defer w.headMu.Unlock()
	if w.headerSent || b.continueSent.Swap(true) {
		return
	}
	w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	w.c.bw.Flush()
}

func (b *requestBody) Close() error {
	b.closed = true
	return nil
}

// drain reads what is left of the body, up to maxPostHandlerReadBytes; it
// reports whether the body ended (so the connection can serve another
// request).
func (b *requestBody) drain() bool {
	n, err := io.CopyN(io.Discard, b.src, maxPostHandlerReadBytes+1)
	if err == io.EOF && n <= maxPostHandlerReadBytes {
		b.done = true
		return true
	}
	return false
}

func bodyAllowed(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

func hasToken(vv []string, token string) bool {
	return len(vv) > 0 && httpguts.HeaderValuesContainsToken(vv, token)
}
