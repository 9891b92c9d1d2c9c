package hbone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// errRefused marks a stream the peer refused before processing it
// (REFUSED_STREAM, or above a GOAWAY's last stream): safe to retry
// elsewhere (RFC 9113 8.7).
var errRefused = errors.New("stream refused by peer")

var errConnClosed = errors.New("connection closed by peer")

// conn is one HTTP/2 connection over TLS, client or server side. One
// goroutine reads frames (readLoop); writers take wmu per frame batch.
// Lock order: wmu before mu; no network write while holding mu.
type conn struct {
	nc     net.Conn
	client bool
	label  string // "hbone <remote> peer <id>", the prefix of its errors

	fr *http2.Framer
	bw *bufio.Writer
	// batch gathers a frame batch's TLS records into one write.
	batch *coalescer
	wmu   sync.Mutex
	henc  *hpack.Encoder
	hbuf  bytes.Buffer
	werr  error // under wmu: the first write failure

	// Frames the read loop sends (acks, window updates, resets) are
	// queued and written by controlLoop or the next writer, never by the
	// read loop itself.
	ctlMu   sync.Mutex
	ctl     []func(fr *http2.Framer) error
	ctlWake chan struct{}

	peerMaxFrame atomic.Uint32

	mu             sync.Mutex
	streams        map[uint32]*stream
	nextID         uint32 // client: the next stream id
	lastPeerID     uint32 // server: the highest stream id the peer opened
	sendWindow     int64  // connection-level, what we may still send
	recvWindow     int64  // connection-level, what the peer may still send
	recvUnacked    int64  // consumed, not yet given back by WINDOW_UPDATE
	peerInitWindow int64
	peerMaxStreams uint32
	maxStreams     uint32 // server: the limit we announced
	active         int    // client: streams reserved or open (the pool's count)
	goAway         bool   // no new streams (GOAWAY sent or received)
	err            error  // the connection ended
	gotSettings    bool
	settings       chan struct{} // closed at the peer's first SETTINGS
	done           chan struct{} // closed when readLoop returned
	idleSince      time.Time
	idleTimer      *time.Timer   // client: set by the pool
	idleTimeout    time.Duration // client: how long it may stay unused
	pingSent       time.Time     // the unanswered PING's time
	ping           KeepAlive

	// newStream is the server's hook for a CONNECT; onClose the owner's
	// (pool, server) once the read loop ended.
	newStream func(s *stream, f *http2.MetaHeadersFrame)
	onClose   func(c *conn)
}

// KeepAlive are the PING settings of a connection: one every Interval, the
// connection failed without an answer within Timeout (zero: ztunnel's 10s
// and 20s; a negative Interval: no PINGs).
type KeepAlive struct {
	Interval, Timeout time.Duration
}

func (k KeepAlive) withDefaults() KeepAlive {
	if k.Interval == 0 {
		k.Interval = 10 * time.Second
	}
	if k.Timeout <= 0 {
		k.Timeout = 20 * time.Second
	}
	return k
}

type connOptions struct {
	ping       KeepAlive
	client     bool
	label      string
	maxStreams uint32 // server: SETTINGS_MAX_CONCURRENT_STREAMS
	newStream  func(s *stream, f *http2.MetaHeadersFrame)
	onClose    func(c *conn)
	// batch is the coalescer under the TLS connection (nil: none).
	batch *coalescer
}

// newConn writes the connection preface and our SETTINGS (ztunnel's
// h2 builders: window sizes, frame size, header list size, no push) and
// enlarges the connection window; the caller runs readLoop.
func newConn(nc net.Conn, o connOptions) (*conn, error) {
	c := &conn{nc: nc, client: o.client, label: o.label, streams: map[uint32]*stream{},
		nextID: 1, sendWindow: 65535, recvWindow: connWindow, peerInitWindow: 65535,
		peerMaxStreams: DefaultMaxStreamsPerConn, maxStreams: o.maxStreams,
		settings: make(chan struct{}), done: make(chan struct{}), ctlWake: make(chan struct{}, 1),
		newStream: o.newStream, onClose: o.onClose, ping: o.ping}
	c.batch = o.batch
	c.peerMaxFrame.Store(16384)
	c.bw = bufio.NewWriterSize(nc, 32<<10)
	c.fr = http2.NewFramer(c.bw, nc)
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	settings := []http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		{ID: http2.SettingMaxFrameSize, Val: maxFrameSize},
	}
	if o.client {
		c.fr.MaxHeaderListSize = clientMaxHeaderList
		settings = append(settings, http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: clientMaxHeaderList})
		if _, err := io.WriteString(c.bw, http2.ClientPreface); err != nil {
			return nil, err
		}
	} else {
		c.fr.MaxHeaderListSize = serverMaxHeaderList
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: o.maxStreams},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: serverMaxHeaderList})
		if err := readPreface(nc); err != nil {
			return nil, err
		}
	}
	err := c.writeFrames(func(fr *http2.Framer) error {
		if err := fr.WriteSettings(settings...); err != nil {
			return err
		}
		return fr.WriteWindowUpdate(0, connWindow-65535)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func readPreface(r io.Reader) error {
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("reading HTTP/2 preface: %w", err)
	}
	if string(buf) != http2.ClientPreface {
		return errors.New("not an HTTP/2 client preface")
	}
	return nil
}

// writeFrames writes and flushes frames under wmu.
func (c *conn) writeFrames(fn func(fr *http2.Framer) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeFramesLocked(fn)
}

// control queues frames for controlLoop: the read loop must not wait for
// wmu, or a writer blocked on a full TCP send buffer while the peer is
// blocked the same way would stop both read loops (the HTTP/2 write
// deadlock grpc-go's loopy writer avoids with its own writer goroutine).
func (c *conn) control(fn func(fr *http2.Framer) error) {
	c.ctlMu.Lock()
	c.ctl = append(c.ctl, fn)
	c.ctlMu.Unlock()
	select {
	case c.ctlWake <- struct{}{}:
	default:
	}
}

// controlLoop writes the queued control frames and the keepalive PINGs
// until the connection ends.
func (c *conn) controlLoop() {
	var tick <-chan time.Time
	if c.ping.Interval > 0 {
		t := time.NewTicker(c.ping.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.ctlWake:
			c.writeFrames(nil)
		case <-tick:
			c.sendPing()
		case <-c.done:
			return
		}
	}
}

// sendPing is ztunnel's do_ping_pong (src/proxy/h2.rs): a PING every
// interval; no answer within the timeout ends the connection and its
// streams. The timeout runs on its own timer, so a write stuck on a dead
// peer's full TCP window is ended by it too.
func (c *conn) sendPing() {
	c.mu.Lock()
	if !c.pingSent.IsZero() {
		c.mu.Unlock()
		return
	}
	sent := time.Now()
	c.pingSent = sent
	c.mu.Unlock()
	time.AfterFunc(c.ping.Timeout, func() {
		c.mu.Lock()
		late := c.pingSent.Equal(sent)
		c.mu.Unlock()
		if late {
			c.fail(fmt.Errorf("no PING answer within %v", c.ping.Timeout))
		}
	})
	c.writeFrames(func(fr *http2.Framer) error { return fr.WritePing(false, pingData) })
}

var pingData = [8]byte{'h', 'b', 'o', 'n', 'e'}

// writeFramesLocked writes the queued control frames, then fn's, and
// flushes; the caller holds wmu.
func (c *conn) writeFramesLocked(fn func(fr *http2.Framer) error) error {
	if c.werr != nil {
		return c.werr
	}
	c.ctlMu.Lock()
	ctl := c.ctl
	c.ctl = nil
	c.ctlMu.Unlock()
	if c.batch != nil {
		// The batch's TLS records leave in one write.
		c.batch.hold()
	}
	var err error
	for _, f := range ctl {
		if err = f(c.fr); err != nil {
			break
		}
	}
	if err == nil && fn != nil {
		err = fn(c.fr)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if c.batch != nil {
		if berr := c.batch.release(); err == nil {
			err = berr
		}
	}
	if err != nil {
		c.werr = fmt.Errorf("%s: write: %w", c.label, err)
		c.nc.Close() // the read loop ends and fails every stream
		return c.werr
	}
	return nil
}

// writeHeadersLocked HPACK-encodes fields into HEADERS (and CONTINUATION
// when over the peer's frame size); the caller holds wmu, which also keeps
// the encoder's table in the order frames are written.
func (c *conn) writeHeadersLocked(id uint32, end bool, fields []hpack.HeaderField) error {
	return c.writeFramesLocked(func(fr *http2.Framer) error {
		c.hbuf.Reset()
		for _, f := range fields {
			if err := c.henc.WriteField(f); err != nil {
				return err
			}
		}
		block := c.hbuf.Bytes()
		max := int(c.peerMaxFrame.Load())
		n := min(len(block), max)
		err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:n],
			EndStream: end, EndHeaders: n == len(block)})
		for block = block[n:]; err == nil && len(block) > 0; block = block[n:] {
			n = min(len(block), max)
			err = fr.WriteContinuation(id, n == len(block), block[:n])
		}
		return err
	})
}

func (c *conn) writeHeaders(id uint32, end bool, fields []hpack.HeaderField) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeHeadersLocked(id, end, fields)
}

func (c *conn) writeReset(id uint32, code http2.ErrCode) {
	c.writeFrames(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

// windowUpdates gives consumed receive window back to the peer.
func windowUpdates(id uint32, streamInc, connInc int64) func(fr *http2.Framer) error {
	return func(fr *http2.Framer) error {
		if streamInc > 0 {
			if err := fr.WriteWindowUpdate(id, uint32(streamInc)); err != nil {
				return err
			}
		}
		if connInc > 0 {
			return fr.WriteWindowUpdate(0, uint32(connInc))
		}
		return nil
	}
}

func (c *conn) sendWindowUpdates(id uint32, streamInc, connInc int64) {
	if streamInc != 0 || connInc != 0 {
		c.writeFrames(windowUpdates(id, streamInc, connInc))
	}
}

// controlWindowUpdates queues them (the read loop's way).
func (c *conn) controlWindowUpdates(id uint32, streamInc, connInc int64) {
	if streamInc != 0 || connInc != 0 {
		c.control(windowUpdates(id, streamInc, connInc))
	}
}

func (c *conn) controlReset(id uint32, code http2.ErrCode) {
	c.control(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

// consumedLocked records n bytes read (or discarded) by the application
// from s and returns the WINDOW_UPDATE increments due: a window is given
// back once half of it is consumed, as h2 and grpc-go do.
func (c *conn) consumedLocked(s *stream, n int64) (streamInc, connInc int64) {
	c.recvUnacked += n
	if c.recvUnacked >= connWindow/2 {
		connInc, c.recvWindow, c.recvUnacked = c.recvUnacked, c.recvWindow+c.recvUnacked, 0
	}
	if s == nil {
		return 0, connInc
	}
	s.recvUnacked += n
	if !s.remoteEnd && s.resetErr == nil && s.recvUnacked >= streamWindow/2 {
		streamInc, s.recvWindow, s.recvUnacked = s.recvUnacked, s.recvWindow+s.recvUnacked, 0
	}
	return streamInc, connInc
}

// removeLocked forgets a stream that is closed both ways or reset.
func (c *conn) removeLocked(s *stream) {
	if s.removed {
		return
	}
	s.removed = true
	delete(c.streams, s.id)
	if c.client {
		c.releaseLocked()
	}
}

// releaseLocked ends one reservation of a client stream slot; the last
// one starts the idle clock (ztunnel's pool_unused_release_timeout).
func (c *conn) releaseLocked() {
	c.active--
	if c.active == 0 && c.goAway && c.err == nil {
		go c.fail(errors.New("drained after GOAWAY"))
	}
	if c.active == 0 {
		c.idleSince = time.Now()
		if c.idleTimer != nil {
			c.idleTimer.Reset(c.idleTimeout)
		}
	}
}

// fail ends the connection: every stream fails with err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%s: %w", c.label, err)
	}
	for _, s := range c.streams {
		s.resetLocked(c.err)
		c.removeLocked(s)
	}
	if !c.gotSettings {
		c.gotSettings = true
		close(c.settings)
	}
	c.mu.Unlock()
	c.nc.Close()
}

// usable says whether a new stream may go on this connection.
func (c *conn) usableLocked() bool {
	return c.err == nil && !c.goAway && c.nextID < 1<<31-1
}

// sendGoAway stops new streams (graceful: the last stream the peer opened
// is still served).
func (c *conn) sendGoAway(code http2.ErrCode) {
	c.mu.Lock()
	c.goAway = true
	last := c.lastPeerID
	c.mu.Unlock()
	c.writeFrames(func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
}

func (c *conn) streamCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}
