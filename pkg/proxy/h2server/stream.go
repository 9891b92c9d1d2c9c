package h2server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

// stream is one request and its response: the request as the handler
// sees it, its body's buffer and windows, and the response writer, in
// one allocation.
type stream struct {
	c  *conn
	id uint32

	// Under c.mu.
	sendWindow int64
	inflow     inflow
	// remoteDone: the client ended its side (END_STREAM); localDone: we
	// ended ours; closed: the stream is gone from c.streams (done both
	// ways, or reset).
	remoteDone, localDone, closed bool
	closeErr                      error
	// body holds the DATA received and not yet read (from bodyOff);
	// bodyErr ends the body once it is read (io.EOF, or why it broke);
	// bodyClosed: the handler closed it, so DATA is dropped.
	body       []byte
	bodyBuf    *[]byte // body's pooled array
	bodyOff    int
	bodyErr    error
	bodyClosed bool
	bodyCond   sync.Cond
	// declLen is the declared Content-Length (-1: none), gotLen the body
	// bytes received.
	declLen, gotLen int64
	gotTrailers     bool
	trailer         http.Header // the trailers received
	needsContinue   bool
	// readTimer and writeTimer are the handler's deadlines
	// (http.ResponseController), stopped when the stream closes.
	readTimer, writeTimer *time.Timer

	req       *http.Request
	reqBody   requestBody
	ctx       serverconn.RequestContext
	stdCancel context.CancelFunc
	handler   http.Handler
	rw        response
}

// processHeaders takes a HEADERS frame: a new stream, or the trailers of
// one (RFC 9113 8.1), checked as net/http's server checks them.
func (c *conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		c.mu.Unlock()
		if st.remoteDone {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return c.processTrailers(st, f)
	}
	if id <= c.maxClientStreamID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.maxClientStreamID = id
	if uint32(len(c.streams)) >= c.srv.maxStreams() {
		acked := c.unackedSettings == 0
		c.mu.Unlock()
		if acked {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	st := c.newStream(id, f.StreamEnded())
	c.mu.Unlock()
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol} // RFC 9113 5.3.1
	}
	handler, err := c.newRequest(st, f)
	if err != nil {
		return err
	}
	st.handler = handler
	return c.schedule(st)
}

// newStream adds stream id (under c.mu).
func (c *conn) newStream(id uint32, ended bool) *stream {
	st := &stream{c: c, id: id, sendWindow: c.initialSendWindow, remoteDone: ended, declLen: -1}
	st.inflow.init(streamWindow)
	st.bodyCond.L = &c.mu
	st.rw.st = st
	c.streams[id] = st
	if len(c.streams) == 1 && c.idle != nil {
		c.idle.Stop()
	}
	return st
}

// newRequest builds st's request from its header block, as net/http's
// server builds it (newWriterAndRequest, httpcommon.NewServerRequest),
// and says which handler serves it: a request whose header list was too
// long is answered 431, one with connection-specific fields 400.
func (c *conn) newRequest(st *stream, f *http2.MetaHeadersFrame) (http.Handler, error) {
	method, scheme := f.PseudoValue("method"), f.PseudoValue("scheme")
	authority, path := f.PseudoValue("authority"), f.PseudoValue("path")
	bad := http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	if f.PseudoValue("protocol") != "" {
		return nil, bad // extended CONNECT is not offered (no SETTINGS_ENABLE_CONNECT_PROTOCOL)
	}
	isConnect := method == http.MethodConnect
	if isConnect {
		if path != "" || scheme != "" || authority == "" {
			return nil, bad
		}
	} else if method == "" || path == "" || (scheme != "https" && scheme != "http") {
		return nil, bad
	}
	header := c.header(f.RegularFields())
	if authority == "" {
		authority = header.Get("Host")
	}
	if strings.IndexByte(authority, '@') != -1 && (scheme == "http" || scheme == "https") {
		return nil, bad // userinfo (RFC 9113 8.3.1)
	}
	var r http.Request
	r.Method, r.Host, r.Header = method, authority, header
	r.Proto, r.ProtoMajor, r.RemoteAddr = "HTTP/2.0", 2, c.remote
	if scheme == "https" {
		r.TLS = c.opts.TLS
	}
	if isConnect {
		r.URL, r.RequestURI = &url.URL{Host: authority}, authority
	} else {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, bad
		}
		r.URL, r.RequestURI = u, path
	}
	if httpguts.HeaderValuesContainsToken(header["Expect"], "100-continue") {
		delete(header, "Expect")
		st.needsContinue = true
	}
	if cookies := header["Cookie"]; len(cookies) > 1 {
		header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	r.Trailer = declaredTrailers(header)
	st.bodyFrom(&r, f.StreamEnded())
	var ctx context.Context = &st.ctx
	if c.ctx.Done() != nil {
		ctx, st.stdCancel = context.WithCancel(c.ctx)
	} else {
		st.ctx.Context = c.ctx
	}
	st.req = r.WithContext(ctx)
	switch {
	case f.Truncated:
		return http.HandlerFunc(headerListTooLong), nil
	case connectionSpecific(header) != nil:
		return badRequest(connectionSpecific(header)), nil
	case r.RequestURI == "*" && method == http.MethodOptions:
		return serverconn.OptionsHandler, nil // as net/http's server
	}
	return c.srv.Handler, nil
}

// bodyFrom sets the request's body and length: none when the HEADERS
// ended the stream, else the Content-Length (0 if unparsable, as
// net/http), or -1.
func (st *stream) bodyFrom(r *http.Request, ended bool) {
	if ended {
		r.Body, r.ContentLength = http.NoBody, 0
		return
	}
	r.ContentLength = -1
	if vv, ok := r.Header["Content-Length"]; ok {
		r.ContentLength = 0
		if cl, err := strconv.ParseUint(vv[0], 10, 63); err == nil {
			r.ContentLength = int64(cl)
		}
	}
	st.declLen = r.ContentLength
	st.reqBody.st = st
	r.Body = &st.reqBody
}

// header makes the request's header from the decoded fields: canonical
// names, one backing array for the values.
func (c *conn) header(fields []hpack.HeaderField) http.Header {
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields))
	for i, hf := range fields {
		k := c.canonical(hf.Name)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, hf.Value)
			continue
		}
		vals[i] = hf.Value
		h[k] = vals[i : i+1 : i+1]
	}
	return h
}

// declaredTrailers is the request's Trailer map from its Trailer fields
// (which are removed), as net/http's server makes it.
func declaredTrailers(h http.Header) http.Header {
	var trailer http.Header
	for _, v := range h["Trailer"] {
		for key := range strings.SplitSeq(v, ",") {
			key = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(key))
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
			default:
				if trailer == nil {
					trailer = make(http.Header)
				}
				trailer[key] = nil
			}
		}
	}
	delete(h, "Trailer")
	return trailer
}

// connHeaders may not appear in an HTTP/2 request (RFC 9113 8.2.2).
var connHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

// connectionSpecific says why the request's fields are not valid in
// HTTP/2 (nil: they are), as net/http's checkValidHTTP2RequestHeaders.
func connectionSpecific(h http.Header) error {
	for _, k := range connHeaders {
		if _, ok := h[k]; ok {
			return fmt.Errorf("request header %q is not valid in HTTP/2", k)
		}
	}
	te := h["Te"]
	if len(te) > 0 && (len(te) > 1 || (te[0] != "trailers" && te[0] != "")) {
		return fmt.Errorf(`request header "TE" may only be "trailers" in HTTP/2`)
	}
	return nil
}

func headerListTooLong(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	io.WriteString(w, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>")
}

func badRequest(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, err.Error(), http.StatusBadRequest)
	})
}

// processTrailers takes the trailers of st's request: they must end the
// stream and hold no pseudo-header. Only the declared ones reach the
// handler, at the body's end (net/http's server).
func (c *conn) processTrailers(st *stream, f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	due, err := c.takeTrailers(st, f)
	c.mu.Unlock()
	c.giveBack(nil, due)
	return err
}

func (c *conn) takeTrailers(st *stream, f *http2.MetaHeadersFrame) (uint32, error) {
	if st.gotTrailers {
		return 0, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st.gotTrailers = true
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		return 0, http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.req.Trailer != nil {
		st.trailer = make(http.Header)
		for _, hf := range f.RegularFields() {
			key := c.canonical(hf.Name)
			if !httpguts.ValidTrailerHeader(key) {
				return 0, http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
			}
			st.trailer[key] = append(st.trailer[key], hf.Value)
		}
	}
	return c.endRemote(st), nil
}

// processData takes a DATA frame into its stream's body, within the
// windows and the declared Content-Length.
func (c *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	c.mu.Lock()
	if id == 0 || id > c.maxClientStreamID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream (RFC 9113 6.1)
	}
	st := c.streams[id]
	if st == nil || st.remoteDone || st.gotTrailers {
		return c.refuseData(f, http2.ErrCodeStreamClosed) // closed, or half-closed
	}
	data := f.Data()
	if st.declLen != -1 && st.gotLen+int64(len(data)) > st.declLen {
		return c.refuseData(f, http2.ErrCodeProtocol) // past the Content-Length
	}
	if f.Length > 0 && !(c.inflow.available(f.Length) && st.inflow.available(f.Length)) {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	c.inflow.take(f.Length)
	st.inflow.take(f.Length)
	st.gotLen += int64(len(data))
	dropped := uint32(0)
	if st.bodyClosed {
		dropped = uint32(len(data))
	} else if len(data) > 0 {
		if st.body == nil {
			st.bodyBuf = bodyPool.Get().(*[]byte)
			st.body = (*st.bodyBuf)[:0]
		}
		st.body = append(st.body, data...)
		st.bodyCond.Signal()
	}
	pad := f.Length - uint32(len(data))
	var due uint32
	if f.StreamEnded() {
		due = c.endRemote(st)
	}
	c.mu.Unlock()
	// Padding is given back at once (net/http), as is DATA for a body the
	// handler closed.
	c.giveBack(nil, pad+dropped+due)
	c.giveBack(st, pad)
	return nil
}

// refuseData answers DATA its stream does not take (under c.mu, which it
// releases): the connection's window is still spent, and given back, and
// the stream is reset with code (net/http's processData).
func (c *conn) refuseData(f *http2.DataFrame, code http2.ErrCode) error {
	ok := c.inflow.take(f.Length)
	c.mu.Unlock()
	if !ok {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.giveBack(nil, f.Length)
	return http2.StreamError{StreamID: f.StreamID, Code: code}
}

// endRemote ends the client's side of st (under c.mu): the body ends
// (short of the declared length: with an error), and a stream whose
// response is done closes (the connection window its unread body held
// is returned, to be given back).
func (c *conn) endRemote(st *stream) uint32 {
	st.remoteDone = true
	switch {
	case st.bodyErr != nil: // a read deadline passed
	case st.declLen != -1 && st.declLen != st.gotLen:
		st.bodyErr = fmt.Errorf("h2server: request declared a Content-Length of %d but only wrote %d bytes", st.declLen, st.gotLen)
	default:
		st.bodyErr = io.EOF
	}
	st.bodyCond.Broadcast()
	if st.localDone {
		return c.forget(st, nil)
	}
	return 0
}

// forget removes st from the connection (under c.mu); err (nil: ended
// normally) is what its body and writes report from now on. Its body's
// buffer goes back to the pool, and the connection window the unread
// part held is returned: the caller gives it back (the inflow batches
// it), once it holds no lock but the writer's.
func (c *conn) forget(st *stream, err error) (due uint32) {
	if st.closed {
		return 0
	}
	if unread := len(st.body) - st.bodyOff; unread > 0 {
		due = uint32(unread)
	}
	st.dropBody()
	st.closed, st.closeErr = true, err
	delete(c.streams, st.id)
	st.readTimer = resetTimer(st.readTimer, time.Time{}, nil)
	st.writeTimer = resetTimer(st.writeTimer, time.Time{}, nil)
	if err != nil && st.bodyErr == nil {
		st.bodyErr = err
	}
	st.bodyCond.Broadcast()
	c.sendCond.Broadcast()
	if len(c.streams) == 0 {
		if c.goAway {
			c.closeSoon()
		} else if c.idle != nil && !c.closed {
			c.idle.Reset(c.srv.IdleTimeout)
		}
	}
	return due
}

// closeStream ends st at once (a reset either way, or the connection's
// end): its body reports err, its handler's context ends, and the
// connection's window its unread body held is given back.
func (c *conn) closeStream(st *stream, err error) {
	c.mu.Lock()
	if st.closed {
		c.mu.Unlock()
		return
	}
	due := c.forget(st, err)
	c.mu.Unlock()
	st.cancel()
	if err != errClientDisconnected {
		c.giveBack(nil, due)
	}
}

// dropBody lets the body's buffer go (under c.mu): the body is read to
// its end, closed, or its stream gone, so no DATA will be kept.
func (st *stream) dropBody() {
	if st.bodyBuf != nil {
		bodyPool.Put(st.bodyBuf)
	}
	st.body, st.bodyBuf, st.bodyOff = nil, nil, 0
}

// bodyPool holds request bodies' buffers: most bodies fit one (a larger
// one grows its own).
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, bodyBufferSize); return &b }}

// cancel ends the request's context.
func (st *stream) cancel() {
	if st.stdCancel != nil {
		st.stdCancel()
		return
	}
	st.ctx.Cancel()
}
