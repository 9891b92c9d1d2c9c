package hbone

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/net/http2"
)

// readLoop reads frames until the connection ends (the one goroutine per
// connection besides the streams' users).
func (c *conn) readLoop() {
	go c.controlLoop()
	err := c.readFrames()
	if errors.Is(err, io.EOF) { // not a stream's clean end
		err = errConnClosed
	} else {
		// A GOAWAY queued for a protocol error: written if the peer reads.
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.writeFrames(nil)
	}
	c.fail(err)
	close(c.done)
	if c.onClose != nil {
		c.onClose(c)
	}
}

func (c *conn) readFrames() error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.streamError(se.StreamID, se.Code, err)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.controlGoAway(http2.ErrCode(ce))
			} else if errors.Is(err, http2.ErrFrameTooLarge) {
				c.controlGoAway(http2.ErrCodeFrameSize)
			}
			return err
		}
		if err := c.handleFrame(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.controlGoAway(http2.ErrCode(ce))
			}
			return err
		}
	}
}

// controlGoAway queues the GOAWAY of a connection error, naming the last
// stream the peer opened that we processed.
func (c *conn) controlGoAway(code http2.ErrCode) {
	c.mu.Lock()
	c.goAway = true
	last := c.lastPeerID
	c.mu.Unlock()
	c.control(func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
}

func (c *conn) handleFrame(f http2.Frame) error {
	c.mu.Lock()
	first := !c.gotSettings
	c.mu.Unlock()
	if sf, ok := f.(*http2.SettingsFrame); first && (!ok || sf.IsAck()) {
		return fmt.Errorf("first frame is %v, not SETTINGS: %w", f.Header().Type, http2.ConnectionError(http2.ErrCodeProtocol))
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if f.IsAck() && f.Data == pingData {
			c.mu.Lock()
			c.pingSent = time.Time{}
			c.mu.Unlock()
		}
		if !f.IsAck() {
			data := f.Data
			c.control(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
		}
	case *http2.RSTStreamFrame:
		c.onReset(f)
	case *http2.GoAwayFrame:
		c.onGoAway(f)
	case *http2.PushPromiseFrame:
		return fmt.Errorf("PUSH_PROMISE with push disabled: %w", http2.ConnectionError(http2.ErrCodeProtocol))
	}
	return nil // PRIORITY and unknown frames are ignored (RFC 9113 5.5)
}

// streamError resets one stream for a frame the Framer rejected.
func (c *conn) streamError(id uint32, code http2.ErrCode, err error) {
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		s.resetLocked(fmt.Errorf("%s: %w", c.label, err))
		c.removeLocked(s)
	} else if !c.client && id > c.lastPeerID {
		c.lastPeerID = id
	}
	c.mu.Unlock()
	c.controlReset(id, code)
}

func (c *conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // padding included (RFC 9113 6.9.1)
	data := f.Data()
	c.mu.Lock()
	c.recvWindow -= n
	if c.recvWindow < 0 {
		c.mu.Unlock()
		return fmt.Errorf("DATA over the connection window: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
	}
	s := c.streams[f.StreamID]
	if s == nil || s.remoteEnd {
		// A stream we closed or reset: the bytes still count against the
		// connection window, give them back.
		_, inc := c.consumedLocked(nil, n)
		c.mu.Unlock()
		c.controlWindowUpdates(0, 0, inc)
		if s != nil {
			c.streamError(f.StreamID, http2.ErrCodeStreamClosed, errors.New("DATA after END_STREAM"))
		}
		return nil
	}
	s.recvWindow -= n
	if s.recvWindow < 0 {
		_, inc := c.consumedLocked(nil, n)
		c.mu.Unlock()
		c.controlWindowUpdates(0, 0, inc)
		c.streamError(f.StreamID, http2.ErrCodeFlowControl, errors.New("DATA over the stream window"))
		return nil
	}
	s.recv.write(data)
	if f.StreamEnded() {
		s.remoteEnd = true
		if s.localEnd {
			c.removeLocked(s)
		}
	}
	s.cond.Broadcast()
	var sinc, cinc int64
	if pad := n - int64(len(data)); pad > 0 {
		sinc, cinc = c.consumedLocked(s, pad)
	}
	c.mu.Unlock()
	c.controlWindowUpdates(f.StreamID, sinc, cinc)
	return nil
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	s := c.streams[id]
	if s != nil && (!c.client || s.respDone) {
		// Trailers: they may only end the stream.
		if !f.StreamEnded() {
			c.mu.Unlock()
			c.streamError(id, http2.ErrCodeProtocol, errors.New("HEADERS after the headers without END_STREAM"))
			return nil
		}
		s.remoteEnd = true
		if s.localEnd {
			c.removeLocked(s)
		}
		s.cond.Broadcast()
		c.mu.Unlock()
		return nil
	}
	if c.client {
		defer c.mu.Unlock()
		if s == nil {
			return nil // a stream we already reset
		}
		return c.onResponseLocked(s, f)
	}
	if id%2 == 0 || id <= c.lastPeerID {
		c.mu.Unlock()
		return fmt.Errorf("HEADERS opening stream %d: %w", id, http2.ConnectionError(http2.ErrCodeProtocol))
	}
	c.lastPeerID = id
	if c.goAway || uint32(len(c.streams)) >= c.maxStreams {
		c.mu.Unlock()
		c.controlReset(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s = newStream(c, id)
	s.remoteEnd = f.StreamEnded()
	c.streams[id] = s
	c.mu.Unlock()
	c.newStream(s, f)
	return nil
}

// onResponseLocked takes a client stream's response headers; 1xx are
// skipped.
func (c *conn) onResponseLocked(s *stream, f *http2.MetaHeadersFrame) error {
	code, err := strconv.Atoi(f.PseudoValue("status"))
	if err != nil || code < 100 || code > 999 {
		s.resetLocked(fmt.Errorf("%s: response :status %q", c.label, f.PseudoValue("status")))
		c.removeLocked(s)
		go c.controlReset(s.id, http2.ErrCodeProtocol)
		return nil
	}
	if code < 200 {
		return nil
	}
	s.status = code
	s.respDone = true
	if f.StreamEnded() {
		s.remoteEnd = true
		if s.localEnd {
			c.removeLocked(s)
		}
	}
	s.cond.Broadcast()
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += inc
		if c.sendWindow > 1<<31-1 {
			return fmt.Errorf("connection window over 2^31-1: %w", http2.ConnectionError(http2.ErrCodeFlowControl))
		}
		for _, s := range c.streams {
			s.cond.Broadcast()
		}
		return nil
	}
	if s := c.streams[f.StreamID]; s != nil {
		s.sendWindow += inc
		if s.sendWindow > 1<<31-1 {
			s.resetLocked(fmt.Errorf("%s: stream window over 2^31-1", c.label))
			c.removeLocked(s)
			go c.controlReset(f.StreamID, http2.ErrCodeFlowControl)
		}
		s.cond.Broadcast()
	}
	return nil
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	tableSize := int64(-1)
	c.mu.Lock()
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil { // RFC 9113 6.5.2 ranges
			return err
		}
		switch st.ID {
		case http2.SettingHeaderTableSize:
			tableSize = int64(st.Val)
		case http2.SettingInitialWindowSize:
			delta := int64(st.Val) - c.peerInitWindow
			c.peerInitWindow = int64(st.Val)
			for _, s := range c.streams {
				s.sendWindow += delta
				s.cond.Broadcast()
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame.Store(st.Val)
		case http2.SettingMaxConcurrentStreams:
			c.peerMaxStreams = st.Val
		}
		return nil
	})
	if !c.gotSettings {
		c.gotSettings = true
		close(c.settings)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.control(func(fr *http2.Framer) error {
		if tableSize >= 0 { // the peer's HPACK decoder table (RFC 7541 4.2)
			c.henc.SetMaxDynamicTableSizeLimit(uint32(min(tableSize, 4096)))
		}
		return fr.WriteSettingsAck()
	})
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		return
	}
	err := fmt.Errorf("%s: stream reset by peer: %v", c.label, f.ErrCode)
	if f.ErrCode == http2.ErrCodeRefusedStream {
		err = fmt.Errorf("%s: %w", c.label, errRefused)
	}
	s.resetLocked(err)
	c.removeLocked(s)
}

// onGoAway: no new streams here; ours above the last stream id were not
// processed and fail as refused (retryable).
func (c *conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAway = true
	if !c.client {
		return
	}
	if c.active == 0 && c.err == nil {
		go c.fail(errors.New("GOAWAY from peer"))
	}
	for id, s := range c.streams {
		if id > f.LastStreamID {
			s.resetLocked(fmt.Errorf("%s: GOAWAY (%v): %w", c.label, f.ErrCode, errRefused))
			c.removeLocked(s)
		}
	}
}
