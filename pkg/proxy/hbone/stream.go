package hbone

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// stream is one CONNECT stream as a net.Conn. Its state is under c.mu;
// cond wakes its readers and writers (data, window, reset, deadlines).
type stream struct {
	c    *conn
	id   uint32
	cond sync.Cond

	sendWindow  int64
	recvWindow  int64
	recvUnacked int64
	recv        recvBuf
	remoteEnd   bool  // END_STREAM received
	localEnd    bool  // END_STREAM sent (or about to be)
	resetErr    error // reset either way, or the connection failed
	removed     bool  // no longer in c.streams
	closed      bool  // Close called
	status      int   // client: the response :status
	respDone    bool  // client: the response headers came (or the stream failed)

	onReset        func() // server: cancels Handle's context
	rdl, wdl       time.Time
	rtimer, wtimer *time.Timer
}

func newStream(c *conn, id uint32) *stream {
	s := &stream{c: c, id: id, sendWindow: c.peerInitWindow, recvWindow: streamWindow}
	s.cond.L = &c.mu
	return s
}

// resetLocked fails the stream with err (the first error stays) and drops
// what it buffered, giving that back to the connection window.
func (s *stream) resetLocked(err error) {
	if s.resetErr == nil {
		s.resetErr = err
		if s.onReset != nil {
			s.onReset()
		}
	}
	s.respDone = true
	if n := s.recv.len(); n > 0 {
		s.recv.reset()
		if _, inc := s.c.consumedLocked(nil, int64(n)); inc > 0 {
			go s.c.sendWindowUpdates(0, 0, inc)
		}
	}
	s.cond.Broadcast()
}

// waitLocked waits for a change or the deadline; false when it passed.
func (s *stream) waitLocked(deadline time.Time) bool {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return false
	}
	s.cond.Wait()
	return true
}

func (s *stream) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	for {
		if s.recv.len() > 0 {
			n := s.recv.read(p)
			sinc, cinc := c.consumedLocked(s, int64(n))
			c.mu.Unlock()
			c.sendWindowUpdates(s.id, sinc, cinc)
			return n, nil
		}
		if err := s.waitRecvLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
}

// waitRecvLocked waits for data with nothing received, or says why no
// more will come: closed, reset, the peer's END_STREAM (io.EOF) or the
// read deadline. c.mu is held.
func (s *stream) waitRecvLocked() error {
	switch {
	case s.closed:
		return net.ErrClosed
	case s.resetErr != nil:
		return s.resetErr
	case s.remoteEnd:
		return io.EOF
	case !s.waitLocked(s.rdl):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// WriteTo writes what the stream receives to w until END_STREAM (nil) or
// an error, straight from the received chunks: no copy into a caller's
// buffer and no buffer held while waiting (io.Copy uses it).
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		h, err := s.nextChunk()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, werr := w.Write((*h.b)[h.r:h.w])
		total += int64(n)
		chunkPool.Put(h.b)
		if werr != nil {
			return total, werr
		}
	}
}

// nextChunk detaches the oldest received chunk (the read loop appends only
// to chunks still queued), counting it as consumed.
func (s *stream) nextChunk() (*chunk, error) {
	c := s.c
	c.mu.Lock()
	for {
		if h := s.recv.pop(); h != nil {
			sinc, cinc := c.consumedLocked(s, int64(h.w-h.r))
			c.mu.Unlock()
			c.sendWindowUpdates(s.id, sinc, cinc)
			return h, nil
		}
		if err := s.waitRecvLocked(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
}

// Write sends p as DATA frames within the stream's and the connection's
// send windows (and the peer's frame size), waiting for WINDOW_UPDATEs.
func (s *stream) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := s.reserveSend(len(p))
		if err != nil {
			return total, err
		}
		chunk := p[:n]
		if err := s.c.writeFrames(func(fr *http2.Framer) error { return fr.WriteData(s.id, false, chunk) }); err != nil {
			return total, err
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

func (s *stream) reserveSend(want int) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case s.closed:
			return 0, net.ErrClosed
		case s.resetErr != nil:
			return 0, s.resetErr
		case s.localEnd:
			return 0, fmt.Errorf("%s: write after CloseWrite", c.label)
		}
		avail := min(s.sendWindow, c.sendWindow, int64(c.peerMaxFrame.Load()))
		if avail > 0 {
			n := min(int64(want), avail)
			s.sendWindow -= n
			c.sendWindow -= n
			return int(n), nil
		}
		if !s.waitLocked(s.wdl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// CloseWrite half-closes: END_STREAM (an empty DATA frame). The stream is
// marked ended before the frame is written, so the stream slot is free by
// the time the peer can see it.
func (s *stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	if s.closed || s.resetErr != nil || s.localEnd {
		err := s.resetErr
		c.mu.Unlock()
		return err
	}
	s.localEnd = true
	if s.remoteEnd {
		c.removeLocked(s)
	}
	c.mu.Unlock()
	return c.writeFrames(func(fr *http2.Framer) error { return fr.WriteData(s.id, true, nil) })
}

// Close ends both ways: END_STREAM when the peer already ended its side
// (a graceful close, as TCP's FIN after EOF), else RST_STREAM(CANCEL).
func (s *stream) Close() error {
	c := s.c
	c.mu.Lock()
	if s.closed {
		c.mu.Unlock()
		return nil
	}
	s.closed = true
	stopTimer(s.rtimer)
	stopTimer(s.wtimer)
	endStream, cancel := false, false
	if !s.removed && s.resetErr == nil {
		if s.remoteEnd && !s.localEnd {
			endStream = true
			s.localEnd = true
		} else {
			cancel = true
		}
	}
	s.resetLocked(net.ErrClosed)
	c.removeLocked(s)
	c.mu.Unlock()
	switch {
	case endStream:
		return c.writeFrames(func(fr *http2.Framer) error { return fr.WriteData(s.id, true, nil) })
	case cancel:
		c.writeReset(s.id, http2.ErrCodeCancel)
	}
	return nil
}

// reset aborts the stream with code (the server's answer to a failed
// upstream, the client's to a cancelled dial).
func (s *stream) reset(code http2.ErrCode, err error) {
	c := s.c
	c.mu.Lock()
	send := !s.removed
	s.resetLocked(err)
	c.removeLocked(s)
	c.mu.Unlock()
	if send {
		c.writeReset(s.id, code)
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func (s *stream) LocalAddr() net.Addr  { return s.c.nc.LocalAddr() }
func (s *stream) RemoteAddr() net.Addr { return s.c.nc.RemoteAddr() }

func (s *stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.rdl = t
	s.rtimer = s.armLocked(s.rtimer, t)
	return nil
}

func (s *stream) SetWriteDeadline(t time.Time) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.wdl = t
	s.wtimer = s.armLocked(s.wtimer, t)
	return nil
}

// armLocked wakes the stream's waiters now and at t.
func (s *stream) armLocked(timer *time.Timer, t time.Time) *time.Timer {
	s.cond.Broadcast()
	stopTimer(timer)
	if t.IsZero() {
		return nil
	}
	return time.AfterFunc(time.Until(t), func() {
		s.c.mu.Lock()
		s.cond.Broadcast()
		s.c.mu.Unlock()
	})
}

// recvBuf holds received DATA in pooled 32 KiB chunks (bounded by the
// stream window).
type recvBuf struct {
	chunks []*chunk
	n      int
}

type chunk struct {
	b    *[]byte
	r, w int
}

const chunkSize = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func (q *recvBuf) len() int { return q.n }

func (q *recvBuf) write(p []byte) {
	q.n += len(p)
	for len(p) > 0 {
		var last *chunk
		if k := len(q.chunks); k > 0 && q.chunks[k-1].w < chunkSize {
			last = q.chunks[k-1]
		} else {
			last = &chunk{b: chunkPool.Get().(*[]byte)}
			q.chunks = append(q.chunks, last)
		}
		n := copy((*last.b)[last.w:], p)
		last.w += n
		p = p[n:]
	}
}

func (q *recvBuf) read(p []byte) int {
	total := 0
	for len(p) > 0 && len(q.chunks) > 0 {
		h := q.chunks[0]
		n := copy(p, (*h.b)[h.r:h.w])
		h.r += n
		total += n
		p = p[n:]
		if h.r == h.w {
			chunkPool.Put(h.b)
			q.chunks[0] = nil
			q.chunks = q.chunks[1:]
		}
	}
	q.n -= total
	return total
}

func (q *recvBuf) pop() *chunk {
	if len(q.chunks) == 0 {
		return nil
	}
	h := q.chunks[0]
	q.chunks[0] = nil
	q.chunks = q.chunks[1:]
	q.n -= h.w - h.r
	return h
}

func (q *recvBuf) reset() {
	for _, h := range q.chunks {
		chunkPool.Put(h.b)
	}
	q.chunks, q.n = nil, 0
}

var _ net.Conn = (*stream)(nil)
