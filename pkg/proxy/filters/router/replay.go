package router

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// replayBody lets a request body be sent more than once. What attempts
// read from the client is kept (up to the limit), so a retry sends it
// again and then continues with what the client has not sent yet. Nothing
// is read ahead of the upstream: the body streams as it arrives (but for
// a small body, read whole first: readSmallBody). Once more
// than the limit was read the body cannot be replayed, and retries stop.
//
// Each attempt reads through its own replayReader; starting a new one cuts
// the previous one off, because a transport may still read an abandoned
// attempt's body after RoundTrip returned.
//
// A replayBody and its buffer come from pools (a request with a body
// under Istio's default retry policy keeps its body, so this is every
// such request): the buffer is taken at the first read, sized by the
// request's Content-Length or grown by size class, and both go back with
// release once the request is done. gen is never reset, so a reader left
// over from an earlier use of the same replayBody never matches again.
type replayBody struct {
	gen      atomic.Uint32
	overflow atomic.Bool
	eof      atomic.Bool

	mu     sync.Mutex
	src    io.Reader
	bp     *[]byte // the kept bytes' pooled buffer (nil: none yet)
	limit  int
	length int64 // the request's Content-Length (-1: unknown)
}

var errBodySuperseded = errors.New("request body: a newer attempt took over")

var replayBodies = sync.Pool{New: func() any { return new(replayBody) }}

func newReplayBody(src io.Reader, limit int64, contentLength int64) *replayBody {
	b := replayBodies.Get().(*replayBody)
	b.mu.Lock()
	b.src, b.limit, b.length, b.bp = src, int(limit), contentLength, nil
	b.overflow.Store(false)
	b.eof.Store(false)
	b.mu.Unlock()
	return b
}

// release ends the body's use: readers still held by a transport are cut
// off, and the buffer and the replayBody go back to their pools. The
// caller must hold no slice of the buffer (complete's result goes to
// mirrors, so a body that was mirrored is never released).
func (b *replayBody) release() {
	b.mu.Lock()
	b.gen.Add(1)
	putBodyBuf(b.bp)
	b.bp, b.src = nil, nil
	b.mu.Unlock()
	replayBodies.Put(b)
}

// reader starts a new attempt's view of the body, from the beginning.
func (b *replayBody) reader() *replayReader {
	return &replayReader{b: b, gen: b.gen.Add(1)}
}

// replayable reports whether everything read so far is kept.
func (b *replayBody) replayable() bool { return !b.overflow.Load() }

// complete returns the whole body if it was read to the end within the
// limit, for a mirror; ok is false otherwise.
func (b *replayBody) complete() ([]byte, bool) {
	if !b.eof.Load() || b.overflow.Load() {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.kept(), true
}

// kept is what was read so far (b.mu held).
func (b *replayBody) kept() []byte {
	if b.bp == nil {
		return nil
	}
	return *b.bp
}

// keep adds p to the kept bytes, or gives up keeping once they would
// exceed the limit (b.mu held).
func (b *replayBody) keep(p []byte) bool {
	have := b.kept()
	need := len(have) + len(p)
	if need > b.limit {
		b.overflow.Store(true)
		putBodyBuf(b.bp)
		b.bp = nil
		return false
	}
	if b.bp == nil || need > cap(have) {
		want := need
		if b.length > 0 && int64(want) < b.length && b.length <= int64(b.limit) {
			want = int(b.length)
		}
		bp := getBodyBuf(want)
		*bp = append(*bp, have...)
		putBodyBuf(b.bp)
		b.bp = bp
	}
	*b.bp = append(*b.bp, p...)
	return true
}

type replayReader struct {
	b   *replayBody
	gen uint32
	off int
}

func (r *replayReader) Read(p []byte) (int, error) {
	b := r.b
	if b.gen.Load() != r.gen {
		return 0, errBodySuperseded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen.Load() != r.gen {
		return 0, errBodySuperseded
	}
	if kept := b.kept(); !b.overflow.Load() && r.off < len(kept) {
		n := copy(p, kept[r.off:])
		r.off += n
		return n, nil
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if n > 0 && !b.overflow.Load() && b.keep(p[:n]) {
		r.off += n
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close does not close the client's body: a retry may still need it. The
// server closes it when the handler returns.
func (r *replayReader) Close() error { return nil }

// Replay buffers are pooled by size class: minBodyBuf << (2*class) bytes,
// 4 KiB to 1 MiB (DefaultBufferLimit). A body kept beyond the largest
// class (a route with a larger buffer limit) gets a buffer of its own.
const (
	minBodyBuf      = 4 << 10
	bodyBufClasses  = 5
	maxPooledBuffer = minBodyBuf << (2 * (bodyBufClasses - 1))
)

var bodyBufs [bodyBufClasses]sync.Pool

// getBodyBuf is an empty buffer with room for n bytes.
func getBodyBuf(n int) *[]byte {
	if n > maxPooledBuffer {
		b := make([]byte, 0, n)
		return &b
	}
	c, size := 0, minBodyBuf
	for size < n {
		c, size = c+1, size<<2
	}
	if bp, ok := bodyBufs[c].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, size)
	return &b
}

// putBodyBuf returns a buffer of getBodyBuf to its pool.
func putBodyBuf(bp *[]byte) {
	if bp == nil {
		return
	}
	for c, size := 0, minBodyBuf; c < bodyBufClasses; c, size = c+1, size<<2 {
		if cap(*bp) == size {
			*bp = (*bp)[:0]
			bodyBufs[c].Put(bp)
			return
		}
	}
}

// SmallBodyLimit is the largest request body read whole before the first
// attempt: one that fits in the upstream connection's write buffer with
// its headers (net/http's Transport: 4 KiB) goes out in one write, since
// the Transport flushes the headers on their own before any body that is
// not an in-memory reader (net/http transfer.go FlushHeaders,
// golang/go#22088). Such a body is what a client sends with its headers.
const SmallBodyLimit = 4 << 10

// readSmallBody reads a request body of known length up to
// SmallBodyLimit and the route's buffer limit (a body over that is not
// kept for retries or mirrors, so it streams) whole; a zero reqBody (and
// ok) for any other request. ok is false when the client sent less than
// its Content-Length.
//
// Without mirrors the body goes into a pooled replayBody (filled), which
// the caller releases once the request is done: a transport may read a
// body after RoundTrip returns, and the replayBody's readers are cut off
// then. Mirrors read the body on their own goroutines, so for them it is
// a slice of its own that the garbage collector frees.
func readSmallBody(r *http.Request, bufferLimit int64, mirrors bool) (body reqBody, ok bool) {
	n := r.ContentLength
	if bufferLimit <= 0 {
		bufferLimit = DefaultBufferLimit
	}
	if n <= 0 || n > min(SmallBodyLimit, bufferLimit) || len(r.TransferEncoding) > 0 || r.Body == nil || r.Body == http.NoBody {
		return reqBody{}, true
	}
	if !mirrors {
		b := newReplayBody(r.Body, bufferLimit, n)
		if !b.fill(int(n)) {
			b.release()
			return reqBody{}, false
		}
		return reqBody{replay: b}, true
	}
	whole := make([]byte, n)
	if _, err := io.ReadFull(r.Body, whole); err != nil {
		return reqBody{}, false
	}
	return reqBody{whole: whole}, true
}

// fill reads the whole body, n bytes (its Content-Length), into the kept
// buffer at once; false when the client sent less.
func (b *replayBody) fill(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bp := getBodyBuf(n)
	*bp = (*bp)[:n]
	if _, err := io.ReadFull(b.src, *bp); err != nil {
		*bp = (*bp)[:0]
		putBodyBuf(bp)
		return false
	}
	b.bp = bp
	b.eof.Store(true)
	return true
}

// reqBody is what each attempt sends: a small body read whole for mirrors
// (an in-memory reader per attempt), a kept body (replay; a small body
// read whole without mirrors is one too, filled at once), or neither (the
// downstream's body, streamed once; nil reader).
type reqBody struct {
	whole  []byte
	replay *replayBody
}

// reader is an attempt's body, nil to send the downstream's own.
func (b reqBody) reader() io.ReadCloser {
	switch {
	case b.whole != nil:
		return io.NopCloser(bytes.NewReader(b.whole))
	case b.replay != nil:
		return b.replay.reader()
	}
	return nil
}

// replayable reports whether another attempt can send the body again.
func (b reqBody) replayable() bool { return b.replay == nil || b.replay.replayable() }
