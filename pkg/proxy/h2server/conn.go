package h2server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// conn is one HTTP/2 connection. Its serve goroutine reads and handles
// every frame; the streams' handlers write through wmu.
//
// Locks: mu guards the connection's and its streams' state (streams,
// windows, body buffers, counters); wmu guards the writer (bw, the
// Framer's write side, the hpack encoder). wmu may be held while taking
// mu, never the other way round, and nobody waits for flow-control window
// while holding wmu.
type conn struct {
	srv    *Server
	rwc    net.Conn
	opts   Options
	ctx    context.Context
	remote string
	br     *bufio.Reader
	fr     *http2.Framer
	// canon caches the canonical form of header names this connection
	// received that are not among the common ones (bounded).
	canon map[string]string

	wmu sync.Mutex
	// lowered caches the wire form of the names this connection sent
	// that are not among the common ones (bounded; under wmu).
	lowered map[string]string
	bw      *bufio.Writer
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	werr    error // the first write error: every later write fails

	mu       sync.Mutex
	sendCond sync.Cond // signalled when send window grows or a stream or the connection ends
	streams  map[uint32]*stream
	// sendWindow is what the client lets us send on the connection;
	// initialSendWindow its SETTINGS_INITIAL_WINDOW_SIZE for streams;
	// peerMaxFrame its SETTINGS_MAX_FRAME_SIZE.
	sendWindow        int64
	initialSendWindow int64
	peerMaxFrame      uint32
	inflow            inflow // the connection's receive window
	maxClientStreamID uint32
	unackedSettings   int
	// handlers are the handlers running (reset streams' included);
	// pending the streams waiting for one to end (rapid reset's bound).
	handlers int
	pending  []*stream
	// work hands a stream to the idle worker (idleWorker: one waits);
	// done is closed when the connection ends.
	work       chan *stream
	idleWorker bool
	done       chan struct{}
	goAway     bool // a GOAWAY was sent: no new stream is served
	// goAwayErr: the GOAWAY carried an error: the connection ends
	// without reading further frames.
	goAwayErr bool
	closed    bool // the connection ended: writers give up
	idle      *time.Timer
}

var (
	errClientDisconnected = errors.New("h2server: client disconnected")
	errStreamClosed       = errors.New("h2server: stream closed")
	errClientReset        = errors.New("h2server: client reset the stream")
	errPreface            = errors.New("h2server: bogus client preface")
)

func newConn(s *Server, c net.Conn, opts Options) *conn {
	cn := &conn{srv: s, rwc: c, opts: opts, remote: c.RemoteAddr().String()}
	cn.ctx = context.WithValue(opts.Context, http.LocalAddrContextKey, c.LocalAddr())
	cn.br = bufio.NewReaderSize(c, readBufferSize)
	cn.bw = bufio.NewWriterSize(c, writeBufferSize)
	cn.fr = http2.NewFramer(cn.bw, cn.br)
	cn.fr.ReadMetaHeaders = hpack.NewDecoder(initialHeaderTableSize, nil)
	cn.fr.MaxHeaderListSize = s.maxHeaderBytes()
	cn.fr.SetMaxReadFrameSize(maxFrameSize)
	cn.fr.SetReuseFrames()
	cn.henc = hpack.NewEncoder(&cn.hbuf)
	cn.sendCond.L = &cn.mu
	cn.streams = make(map[uint32]*stream)
	cn.work = make(chan *stream, 1)
	cn.done = make(chan struct{})
	cn.sendWindow = initialWindow
	cn.initialSendWindow = initialWindow
	cn.peerMaxFrame = minMaxFrameSize
	cn.inflow.init(connWindow)
	return cn
}

const (
	initialHeaderTableSize = 4096
	initialWindow          = 65535 // RFC 9113 6.9.2
	minMaxFrameSize        = 16384
	maxWindow              = 1<<31 - 1
)

// serve runs the connection: the handshake, then every frame until the
// connection ends.
func (c *conn) serve() {
	defer c.end()
	if err := c.handshake(); err != nil {
		c.srv.logger().Debug("http2 handshake failed", "remote", c.remote, "err", err)
		return
	}
	if d := c.srv.IdleTimeout; d > 0 {
		c.idle = time.AfterFunc(d, c.onIdle)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			err = c.process(f)
		}
		if err != nil && !c.handleError(err, f) {
			return
		}
	}
}

// handshake sends the server's SETTINGS and reads the client preface and
// its first SETTINGS (RFC 9113 3.4).
func (c *conn) handshake() error {
	d := c.srv.ReadHeaderTimeout
	if d <= 0 {
		d = prefaceTimeout
	}
	c.rwc.SetReadDeadline(time.Now().Add(d))
	c.mu.Lock()
	c.unackedSettings++
	c.mu.Unlock()
	err := c.write(func() error {
		err := c.fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.maxStreams()},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.srv.maxHeaderBytes()},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: initialHeaderTableSize},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		)
		if err == nil {
			err = c.fr.WriteWindowUpdate(0, connWindow-initialWindow)
		}
		return err
	})
	if err != nil {
		return err
	}
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return err
	}
	if string(preface[:]) != http2.ClientPreface {
		return errPreface
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		c.goAwayNow(http2.ErrCodeProtocol)
		return fmt.Errorf("h2server: first frame is %v, not SETTINGS", f.Header().Type)
	}
	if err := c.processSettings(sf); err != nil {
		c.handleError(err, f)
		return err
	}
	c.rwc.SetReadDeadline(time.Time{})
	return nil
}

// handleError answers an error reading or handling a frame: a stream
// error resets the stream, a connection error sends GOAWAY. It reports
// whether reading goes on.
func (c *conn) handleError(err error, f http2.Frame) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		c.resetStream(se.StreamID, se.Code)
		return true
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.goAwayNow(http2.ErrCodeFrameSize)
	case errors.As(err, &ce):
		if f != nil && f.Header().StreamID > c.lastStreamID() {
			c.mu.Lock()
			c.maxClientStreamID = f.Header().StreamID
			c.mu.Unlock()
		}
		c.srv.logger().Debug("http2 connection error", "remote", c.remote, "err", err)
		c.goAwayNow(http2.ErrCode(ce))
	default:
		return false // the client went away, or the read deadline after a GOAWAY passed
	}
	return false
}

// process handles one frame. A stream error resets the stream; a
// connection error ends the connection.
func (c *conn) process(f http2.Frame) error {
	if c.ignoreAfterGoAway(f) {
		return nil
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.MetaHeadersFrame:
		return c.processHeaders(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.write(func() error { return c.fr.WritePing(true, f.Data) })
	case *http2.RSTStreamFrame:
		return c.processReset(f)
	case *http2.GoAwayFrame:
		// The client will open no more streams: finish the ones it has
		// (net/http starts its graceful shutdown too).
		c.shutdown()
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil // priorities are advice; sluice serves streams as they come
	case *http2.PushPromiseFrame:
		// A client cannot push (RFC 9113 8.4).
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // unknown frame types are ignored (RFC 9113 4.1)
}

// ignoreAfterGoAway reports whether f is for a stream past the GOAWAY
// sent, which is ignored (its DATA still counts against the connection's
// window, which is given back), as net/http's server does.
func (c *conn) ignoreAfterGoAway(f http2.Frame) bool {
	c.mu.Lock()
	ignore := c.goAway && f.Header().StreamID > c.maxClientStreamID
	c.mu.Unlock()
	if !ignore {
		return false
	}
	if df, ok := f.(*http2.DataFrame); ok && df.Length > 0 {
		c.mu.Lock()
		ok := c.inflow.take(df.Length)
		c.mu.Unlock()
		if ok {
			c.giveBack(nil, df.Length)
		}
	}
	return true
}

func (c *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.unackedSettings == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.unackedSettings--
		return nil
	}
	if f.NumSettings() > 100 || f.HasDuplicates() {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if err := f.ForeachSetting(c.processSetting); err != nil {
		return err
	}
	return c.write(c.fr.WriteSettingsAck)
}

func (c *conn) processSetting(s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingHeaderTableSize:
		c.wmu.Lock()
		c.henc.SetMaxDynamicTableSize(s.Val)
		c.wmu.Unlock()
	case http2.SettingInitialWindowSize:
		return c.setInitialSendWindow(int64(s.Val))
	case http2.SettingMaxFrameSize:
		c.mu.Lock()
		c.peerMaxFrame = s.Val
		c.mu.Unlock()
	}
	// ENABLE_PUSH, MAX_CONCURRENT_STREAMS (for pushes) and
	// MAX_HEADER_LIST_SIZE (advice) change nothing a server does here.
	return nil
}

// setInitialSendWindow applies a new SETTINGS_INITIAL_WINDOW_SIZE to
// every open stream (RFC 9113 6.9.2).
func (c *conn) setInitialSendWindow(v int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delta := v - c.initialSendWindow
	c.initialSendWindow = v
	for _, st := range c.streams {
		st.sendWindow += delta
		if st.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	}
	c.sendCond.Broadcast()
	return nil
}

func (c *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendWindow+inc > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.sendWindow += inc
		c.sendCond.Broadcast()
		return nil
	}
	if f.StreamID > c.maxClientStreamID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream (RFC 9113 5.1)
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil // closed: allowed (RFC 9113 6.9)
	}
	if st.sendWindow+inc > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.sendWindow += inc
	c.sendCond.Broadcast()
	return nil
}

func (c *conn) processReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	if f.StreamID > c.maxClientStreamID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
	}
	st := c.streams[f.StreamID]
	c.mu.Unlock()
	if st != nil {
		c.closeStream(st, errClientReset)
	}
	return nil
}

// write runs fn, which writes frames, under the writer's lock, then
// flushes. The first write error closes the connection.
func (c *conn) write(fn func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	err := fn()
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.writeFailed(err)
	}
	return err
}

// writeFailed records a write error (under wmu) and closes the
// connection, which ends its serve goroutine.
func (c *conn) writeFailed(err error) {
	if c.werr == nil {
		c.werr = err
		c.rwc.Close()
	}
}

// giveBack gives the client back n bytes of window it spent on st (nil:
// the connection), through the inflow, which sends the update once it is
// worth a frame.
func (c *conn) giveBack(st *stream, n uint32) {
	if n == 0 {
		return
	}
	var id, inc uint32
	c.mu.Lock()
	if st == nil {
		inc = c.inflow.add(int(n))
	} else if !st.closed && !st.remoteDone {
		id, inc = st.id, st.inflow.add(int(n))
	}
	c.mu.Unlock()
	if inc > 0 {
		c.write(func() error { return c.fr.WriteWindowUpdate(id, inc) })
	}
}

// resetStream sends RST_STREAM and closes the stream, if it is open.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if st != nil {
		c.closeStream(st, http2.StreamError{StreamID: id, Code: code})
	}
	c.write(func() error { return c.fr.WriteRSTStream(id, code) })
}

func (c *conn) lastStreamID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxClientStreamID
}

// shutdown starts a graceful end: GOAWAY with the last stream taken; the
// streams open finish; the connection closes once it has none.
func (c *conn) shutdown() {
	c.sendGoAway(http2.ErrCodeNo)
	c.mu.Lock()
	idle := len(c.streams) == 0
	c.mu.Unlock()
	if idle {
		c.closeSoon()
	}
}

// goAwayNow sends GOAWAY with an error code; the serve goroutine stops
// reading frames and the connection closes.
func (c *conn) goAwayNow(code http2.ErrCode) {
	c.sendGoAway(code)
	c.closeSoon()
}

// sendGoAway sends GOAWAY once (an error code after NO_ERROR is sent
// too).
func (c *conn) sendGoAway(code http2.ErrCode) {
	c.mu.Lock()
	if c.goAway && code == http2.ErrCodeNo {
		c.mu.Unlock()
		return
	}
	c.goAway = true
	c.goAwayErr = c.goAwayErr || code != http2.ErrCodeNo
	last := c.maxClientStreamID
	c.mu.Unlock()
	c.write(func() error { return c.fr.WriteGoAway(last, code, nil) })
}

// closeSoon ends the connection after goAwayDelay, unless the client
// closes it first: the serve goroutine reads (and ignores new streams)
// until then, so the client reads the GOAWAY before the close.
func (c *conn) closeSoon() {
	c.rwc.SetReadDeadline(time.Now().Add(goAwayDelay))
}

// onIdle ends a connection that has had no stream for IdleTimeout.
func (c *conn) onIdle() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && c.handlers == 0
	c.mu.Unlock()
	if idle {
		c.shutdown()
	}
}

// end closes the connection when its serve goroutine returns: every
// stream still open ends, and writers waiting give up.
func (c *conn) end() {
	c.mu.Lock()
	c.closed = true
	streams := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		streams = append(streams, st)
	}
	c.pending = nil
	c.sendCond.Broadcast()
	c.mu.Unlock()
	close(c.done)
	for _, st := range streams {
		c.closeStream(st, errClientDisconnected)
	}
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Lock()
	linger := c.goAwayErr
	c.mu.Unlock()
	if linger {
		c.linger()
	}
	c.rwc.Close()
}

// linger half-closes a connection ended by a GOAWAY with an error and
// reads what the client still sends, for up to goAwayDelay: closing
// with bytes unread would reset the connection, and the client could
// lose the GOAWAY that says why.
func (c *conn) linger() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.rwc.SetReadDeadline(time.Now().Add(goAwayDelay))
	io.Copy(io.Discard, c.br)
}
