package h2server

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

// response is a stream's http.ResponseWriter (with Flush for
// http.ResponseController). The body is buffered up to handlerChunk; a
// handler that returns with its response buffered has it written at
// once: HEADERS (with the computed Content-Length), DATA and trailers,
// one flush.
//
// The header is read when it is sent (the first flush or the handler's
// return), not copied at WriteHeader as net/http does; a declared
// trailer's key is never sent among the headers.
type response struct {
	st     *stream
	header http.Header
	status int
	// wroteHeader: the final status is set; sentHeader: the HEADERS went
	// out; done: the stream's end went out.
	wroteHeader, sentHeader, done bool
	handlerDone                   bool
	buf                           *[]byte // the body not yet sent (pooled)
	declLen                       int64   // the Content-Length sent (-1: none)
	written                       int64
	trailers                      []string // declared trailer keys, canonical
	// goAway: the handler said Connection: close, so the connection
	// ends gracefully after this response (net/http).
	goAway bool
}

var (
	errTooLong = errors.New("http2: handler wrote more than declared Content-Length")
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 0, handlerChunk); return &b }}
)

var _ http.Flusher = (*response)(nil)

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// WriteHeader sets the final status; a 1xx is sent at once with the
// header so far, less Content-Length and Transfer-Encoding (net/http).
func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h2server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		w.send1xx(code)
		return
	}
	w.wroteHeader, w.status = true, code
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.sentHeader && w.declLen >= 0 && w.written > w.declLen {
		return 0, errTooLong
	}
	if w.st.req.Method == http.MethodHead {
		return len(p), nil
	}
	if w.buf == nil {
		w.buf = bufPool.Get().(*[]byte)
	}
	if len(*w.buf)+len(p) <= handlerChunk {
		*w.buf = append(*w.buf, p...)
		return len(p), nil
	}
	if err := w.send(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *response) Flush() { w.FlushError() }

// EnableFullDuplex: an HTTP/2 stream is full duplex already.
func (w *response) EnableFullDuplex() error { return nil }

// SetReadDeadline ends the request body's reads at t: what is buffered
// is still read, then os.ErrDeadlineExceeded (net/http's onReadTimeout).
// The zero time clears it.
func (w *response) SetReadDeadline(t time.Time) error {
	st := w.st
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	st.readTimer = resetTimer(st.readTimer, t, st.onReadTimeout)
	return nil
}

// SetWriteDeadline resets the stream (INTERNAL_ERROR) at t if it is not
// done by then, as net/http's onWriteTimeout does; writes then fail. The
// zero time clears it.
func (w *response) SetWriteDeadline(t time.Time) error {
	st := w.st
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	st.writeTimer = resetTimer(st.writeTimer, t, st.onWriteTimeout)
	return nil
}

// resetTimer stops tm and, unless at is zero, arms one for f at that
// time (at once if it passed).
func resetTimer(tm *time.Timer, at time.Time, f func()) *time.Timer {
	if tm != nil {
		tm.Stop()
	}
	if at.IsZero() {
		return nil
	}
	return time.AfterFunc(max(time.Until(at), 0), f)
}

func (st *stream) onReadTimeout() {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.closed && st.bodyErr == nil {
		st.bodyErr = fmt.Errorf("h2server: request body read: %w", os.ErrDeadlineExceeded)
		st.bodyCond.Broadcast()
	}
}

func (st *stream) onWriteTimeout() {
	c := st.c
	c.mu.Lock()
	closed := st.closed
	c.mu.Unlock()
	if !closed {
		c.resetStream(st.id, http2.ErrCodeInternal)
	}
}

// FlushError sends the header, if not yet sent, and what is buffered.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.send(nil, false)
}

// finish ends the response when the handler returned. A client still
// sending its request is told to stop, without error (RST_STREAM
// NO_ERROR, RFC 9113 8.1, as net/http).
func (w *response) finish() {
	st, c := w.st, w.st.c
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.handlerDone = true
	w.promoteTrailers()
	err := w.send(nil, true)
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
		bufPool.Put(w.buf)
		w.buf = nil
	}
	c.mu.Lock()
	open := !st.remoteDone && !st.closed
	c.mu.Unlock()
	if err == nil && open {
		c.resetStream(st.id, http2.ErrCodeNo)
	}
	st.cancel()
}

// send writes what is due, p after the buffer, under the writer's lock,
// and flushes; end ends the stream.
func (w *response) send(p []byte, end bool) error {
	c := w.st.c
	c.wmu.Lock()
	err := w.sendLocked(p, end)
	if err == nil {
		if err = c.bw.Flush(); err != nil {
			c.writeFailed(err)
		}
	}
	c.wmu.Unlock()
	if w.goAway {
		w.goAway = false
		c.shutdown()
	}
	return err
}

func (w *response) sendLocked(p []byte, end bool) error {
	c := w.st.c
	if w.done {
		return nil
	}
	if c.werr != nil {
		return c.werr
	}
	var buf []byte
	if w.buf != nil {
		buf = *w.buf
	}
	trailers := end && w.hasTrailers()
	isHead := w.st.req.Method == http.MethodHead
	if !w.sentHeader {
		w.sentHeader = true
		endStream := (end && !trailers && len(buf)+len(p) == 0) || isHead
		bodyLen := len(buf) + len(p)
		if isHead {
			bodyLen = int(w.written) // what the handler wrote, not sent
		}
		if err := w.writeHeaders(bodyLen, endStream); err != nil {
			return err
		}
		if endStream {
			return w.ended()
		}
	}
	if isHead {
		if !end {
			return nil
		}
		buf, p = nil, nil
	}
	// The stream ends with the last DATA (an empty one when there is no
	// body left to send), unless trailers follow.
	last := end && !trailers
	if err := w.writeData(buf, last && len(p) == 0); err != nil {
		return err
	}
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
	}
	if len(p) > 0 {
		if err := w.writeData(p, last); err != nil {
			return err
		}
	}
	if trailers {
		if err := w.writeBlock(w.encodeTrailers(), true); err != nil {
			return err
		}
	}
	if end {
		return w.ended()
	}
	return nil
}

// ended marks the stream's side as done; a stream the client ended too
// is closed.
func (w *response) ended() error {
	st, c := w.st, w.st.c
	w.done = true
	c.mu.Lock()
	st.localDone = true
	var inc uint32
	if st.remoteDone {
		if due := c.forget(st, nil); due > 0 {
			inc = c.inflow.add(int(due))
		}
	}
	c.mu.Unlock()
	if inc > 0 {
		return c.fr.WriteWindowUpdate(0, inc) // under wmu, flushed by send
	}
	return nil
}

// writeData writes p as DATA frames within the peer's windows and frame
// size, waiting (without the writer's lock) for window; end sets
// END_STREAM on the last (an empty p with end: one empty frame).
func (w *response) writeData(p []byte, end bool) error {
	st, c := w.st, w.st.c
	if len(p) == 0 {
		if !end {
			return nil
		}
		if err := c.streamErr(st); err != nil {
			return err
		}
		return c.fr.WriteData(st.id, true, nil)
	}
	for len(p) > 0 {
		n, err := c.reserve(st, len(p), false)
		if err == nil && n == 0 {
			if err = c.bw.Flush(); err != nil {
				c.writeFailed(err)
				return err
			}
			c.wmu.Unlock()
			n, err = c.reserve(st, len(p), true)
			c.wmu.Lock()
			if err == nil && c.werr != nil {
				err = c.werr
			}
		}
		if err != nil {
			return err
		}
		if err := c.fr.WriteData(st.id, end && n == len(p), p[:n]); err != nil {
			c.writeFailed(err)
			return err
		}
		p = p[n:]
	}
	return nil
}

// reserve takes up to n bytes of send window for st, capped at the
// peer's frame size; with wait it waits for window (0 otherwise).
func (c *conn) reserve(st *stream, n int, wait bool) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return 0, errClientDisconnected
		}
		if st.closed {
			return 0, closedErr(st)
		}
		got := min(int64(n), int64(c.peerMaxFrame), st.sendWindow, c.sendWindow)
		if got > 0 {
			st.sendWindow -= got
			c.sendWindow -= got
			return int(got), nil
		}
		if !wait {
			return 0, nil
		}
		c.sendCond.Wait()
	}
}

func (c *conn) streamErr(st *stream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.closed {
		return closedErr(st)
	}
	return nil
}

func closedErr(st *stream) error {
	if st.closeErr != nil {
		return st.closeErr
	}
	return errStreamClosed
}

// writeHeaders writes the response's HEADERS: the status, the header
// (less Connection, Content-Length and the trailers), a Content-Length
// (declared, or computed when the handler is done and all the body is
// here) and Date.
func (w *response) writeHeaders(bodyLen int, endStream bool) error {
	for _, v := range w.header["Trailer"] {
		forEachElement(v, w.declareTrailer)
	}
	clen := ""
	w.declLen = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if cl, err := strconv.ParseUint(v, 10, 63); err == nil {
			clen, w.declLen = v, int64(cl)
		}
	} else if w.handlerDone && bodyAllowed(w.status) && (bodyLen > 0 || w.st.req.Method != http.MethodHead) {
		clen = strconv.Itoa(bodyLen)
	}
	if vv, ok := w.header["Connection"]; ok && len(vv) > 0 && vv[0] == "close" {
		w.goAway = true
	}
	c := w.st.c
	c.hbuf.Reset()
	c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(w.status)})
	c.encodeFields(w.header, w.skipInHeaders)
	if clen != "" {
		c.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: clen})
	}
	if _, ok := w.header["Date"]; !ok {
		c.henc.WriteField(hpack.HeaderField{Name: "date", Value: serverconn.Date()})
	}
	return w.writeBlock(c.hbuf.Bytes(), endStream)
}

// skipInHeaders: the fields the HEADERS leave out.
func (w *response) skipInHeaders(k string) bool {
	if k == "Connection" || k == "Content-Length" {
		return true
	}
	return strings.HasPrefix(k, http.TrailerPrefix) || slices.Contains(w.trailers, k)
}

// send1xx sends an informational response at once.
func (w *response) send1xx(code int) {
	c := w.st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil || c.streamErr(w.st) != nil {
		return
	}
	c.hbuf.Reset()
	c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(code)})
	c.encodeFields(w.header, func(k string) bool {
		return k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection"
	})
	if err := w.writeBlock(c.hbuf.Bytes(), false); err == nil {
		if err := c.bw.Flush(); err != nil {
			c.writeFailed(err)
		}
	}
}

// writeContinue sends 100 Continue, on the first read of a body whose
// request expects it.
func (w *response) writeContinue() {
	c := w.st.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if w.sentHeader || c.werr != nil || c.streamErr(w.st) != nil {
		return
	}
	c.hbuf.Reset()
	c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
	if err := w.writeBlock(c.hbuf.Bytes(), false); err == nil {
		if err := c.bw.Flush(); err != nil {
			c.writeFailed(err)
		}
	}
}

// writeBlock writes a header block as HEADERS and CONTINUATION frames of
// the peer's frame size.
func (w *response) writeBlock(block []byte, endStream bool) error {
	c, id := w.st.c, w.st.id
	c.mu.Lock()
	max := int(c.peerMaxFrame)
	c.mu.Unlock()
	first := block[:min(len(block), max)]
	rest := block[len(first):]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0})
	for err == nil && len(rest) > 0 {
		frag := rest[:min(len(rest), max)]
		rest = rest[len(frag):]
		err = c.fr.WriteContinuation(id, len(rest) == 0, frag)
	}
	if err != nil {
		c.writeFailed(err)
	}
	return err
}

// encodeFields encodes h's fields, lower-cased, less the ones skip names,
// invalid names and values, and Transfer-Encoding other than
// "trailers" (net/http's encodeHeaders).
func (c *conn) encodeFields(h http.Header, skip func(string) bool) {
	for k, vv := range h {
		if skip(k) {
			continue
		}
		lk, ok := c.lower(k)
		if !ok || !validWireName(lk) {
			continue
		}
		isTE := lk == "transfer-encoding"
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) || (isTE && v != "trailers") {
				continue
			}
			c.henc.WriteField(hpack.HeaderField{Name: lk, Value: v})
		}
	}
}

// declareTrailer adds a trailer key (net/http's declareTrailer).
func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) || slices.Contains(w.trailers, k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

// promoteTrailers turns the fields under http.TrailerPrefix into
// declared trailers, when the handler is done.
func (w *response) promoteTrailers() {
	for k, vv := range w.header {
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		key := strings.TrimPrefix(k, http.TrailerPrefix)
		w.declareTrailer(key)
		w.header[http.CanonicalHeaderKey(key)] = vv
	}
}

// hasTrailers reports whether a declared trailer has a value to send.
func (w *response) hasTrailers() bool {
	if !w.sentHeader {
		for _, v := range w.header["Trailer"] {
			forEachElement(v, w.declareTrailer)
		}
	}
	for _, k := range w.trailers {
		if _, ok := w.header[k]; ok {
			return true
		}
	}
	return false
}

func (w *response) encodeTrailers() []byte {
	c := w.st.c
	c.hbuf.Reset()
	slices.Sort(w.trailers)
	for _, k := range w.trailers {
		lk, ok := c.lower(k)
		if !ok || !validWireName(lk) {
			continue
		}
		for _, v := range w.header[k] {
			if httpguts.ValidHeaderFieldValue(v) {
				c.henc.WriteField(hpack.HeaderField{Name: lk, Value: v})
			}
		}
	}
	return c.hbuf.Bytes()
}

func forEachElement(v string, fn func(string)) {
	for f := range strings.SplitSeq(v, ",") {
		if f = textproto.TrimString(f); f != "" {
			fn(f)
		}
	}
}

func bodyAllowed(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

// validWireName: a lower-case token (RFC 9113 8.2.1).
func validWireName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !httpguts.IsTokenRune(r) || ('A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}
