package h2server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"

	"golang.org/x/net/http2"
)

// schedule starts st's handler, or queues it while as many handlers run
// as streams may be open: a reset stream's handler still counts until it
// returns, so resetting streams cannot start handlers without bound
// (CVE-2023-44487, "rapid reset"). A client that queues more than four
// times the limit is told ENHANCE_YOUR_CALM, as net/http's server
// (scheduleHandler) tells it.
func (c *conn) schedule(st *stream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	max := int(c.srv.maxStreams())
	if c.handlers < max {
		c.handlers++
		if c.idleWorker {
			c.idleWorker = false
			c.work <- st // buffered for the one idle worker: never blocks
		} else {
			go c.worker(st)
		}
		return nil
	}
	if len(c.pending) > 4*max {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.pending = append(c.pending, st)
	return nil
}

// worker runs handlers: st's, then the queued streams', then, as the
// connection's one idle worker, the next stream handed to it. Keeping a
// goroutine spares each request a new one and the growth of its stack
// (net/http starts one per stream); an idle worker's stack is shrunk by
// the GC, and it ends with the connection.
func (c *conn) worker(st *stream) {
	for st != nil {
		c.runHandler(st)
		var wait bool
		if st, wait = c.handlerDone(); st != nil || !wait {
			continue
		}
		select {
		case st = <-c.work:
		case <-c.done:
			select {
			case st = <-c.work:
			default:
			}
		}
	}
}

// handlerDone counts a handler out and gives its worker the next queued
// stream still open; else it reports whether the worker is to wait as
// the idle one (false: it ends).
func (c *conn) handlerDone() (next *stream, wait bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers--
	for len(c.pending) > 0 && c.handlers < int(c.srv.maxStreams()) {
		st := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		if !st.closed {
			c.handlers++
			return st, false
		}
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	if len(c.streams) == 0 && c.handlers == 0 && c.idle != nil && !c.closed && !c.goAway {
		c.idle.Reset(c.srv.IdleTimeout)
	}
	if c.idleWorker || c.closed {
		return nil, false
	}
	c.idleWorker = true
	return nil, true
}

// runHandler serves st's request and finishes its response. A panic
// resets the stream (INTERNAL_ERROR) and is logged unless it is
// http.ErrAbortHandler, as net/http's server does.
func (c *conn) runHandler(st *stream) {
	panicked := true
	defer func() {
		if !panicked {
			return
		}
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			c.srv.logger().Error("http2 handler panicked", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
		c.resetStream(st.id, http2.ErrCodeInternal)
		st.cancel()
	}()
	st.handler.ServeHTTP(&st.rw, st.req)
	panicked = false
	st.rw.finish()
}

// requestBody is a request's Body: the DATA its stream received. Read and
// Close may be called from different goroutines (a proxy reads the body
// on one while the handler writes the response on another).
type requestBody struct {
	st  *stream
	eof bool // the trailers were handed over (Read's goroutine only)
}

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	if st.needsContinue {
		st.needsContinue = false
		st.rw.writeContinue()
	}
	c.mu.Lock()
	for len(st.body) == st.bodyOff && st.bodyErr == nil && !st.bodyClosed {
		st.bodyCond.Wait()
	}
	if st.bodyClosed {
		c.mu.Unlock()
		return 0, errClosedBody
	}
	if len(st.body) > st.bodyOff {
		n := copy(p, st.body[st.bodyOff:])
		st.bodyOff += n
		if st.bodyOff == len(st.body) {
			st.body, st.bodyOff = st.body[:0], 0
		}
		connInc, streamInc := c.inflow.add(n), uint32(0)
		if !st.remoteDone && !st.closed {
			streamInc = st.inflow.add(n)
		}
		c.mu.Unlock()
		c.returnWindow(st.id, connInc, streamInc)
		return n, nil
	}
	err := st.bodyErr
	st.dropBody()
	if err == io.EOF && !b.eof {
		b.eof = true
		for k, vv := range st.trailer {
			if _, ok := st.req.Trailer[k]; ok {
				st.req.Trailer[k] = vv
			}
		}
	}
	c.mu.Unlock()
	return 0, err
}

// Close drops what the body holds and will receive; the client's window
// for it is given back on the connection.
func (b *requestBody) Close() error {
	st := b.st
	c := st.c
	c.mu.Lock()
	if st.bodyClosed {
		c.mu.Unlock()
		return nil
	}
	unread := len(st.body) - st.bodyOff
	st.dropBody()
	st.bodyClosed = true
	st.bodyCond.Broadcast()
	c.mu.Unlock()
	c.giveBack(nil, uint32(unread))
	return nil
}

// returnWindow sends the WINDOW_UPDATEs a read of the body earned.
func (c *conn) returnWindow(id, connInc, streamInc uint32) {
	if connInc == 0 && streamInc == 0 {
		return
	}
	c.write(func() error {
		if connInc > 0 {
			if err := c.fr.WriteWindowUpdate(0, connInc); err != nil {
				return err
			}
		}
		if streamInc > 0 {
			return c.fr.WriteWindowUpdate(id, streamInc)
		}
		return nil
	})
}

// errClosedBody is what a body read after Close reports (net/http's
// text).
var errClosedBody = errors.New("http2: request body closed due to handler exiting")

// inflow is a receive window: what the client may still send (avail),
// and what was read but not yet given back (unsent). Window updates are
// sent when the unsent part reaches 4 KiB or would double the window
// (net/http's inflow).
type inflow struct {
	avail, unsent int32
}

const inflowMinRefresh = 4 << 10

func (f *inflow) init(n int32) { f.avail = n }

func (f *inflow) available(n uint32) bool { return n <= uint32(f.avail) }

func (f *inflow) take(n uint32) bool {
	if n > uint32(f.avail) {
		return false
	}
	f.avail -= int32(n)
	return true
}

// add notes n bytes read and returns the increment to send now (0: not
// yet).
func (f *inflow) add(n int) uint32 {
	unsent := int64(f.unsent) + int64(n)
	if unsent < inflowMinRefresh && unsent < int64(f.avail) {
		f.unsent = int32(unsent)
		return 0
	}
	f.avail += int32(unsent)
	f.unsent = 0
	return uint32(unsent)
}
