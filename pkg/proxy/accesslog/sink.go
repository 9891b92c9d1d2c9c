package accesslog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Flushing as Envoy's AccessLogFileImpl does it: lines go to a memory
// buffer, written by a background goroutine every FlushInterval (Envoy's
// file_flush_interval default, 1 s) or as soon as FlushSize bytes wait
// (Envoy's 64 KiB). A file that cannot keep up does not grow the buffer
// without bound: beyond maxBuffered bytes lines are dropped and counted.
const (
	FlushInterval = time.Second
	FlushSize     = 64 << 10
	maxBuffered   = 16 << 20
)

// Sink is one open access log file, shared by every logger writing that
// path, across pushes: a push keeping the path keeps the file (Envoy's
// AccessLogManager).
type Sink struct {
	path string
	w    io.Writer

	mu  sync.Mutex
	buf []byte

	flushMu sync.Mutex
	spare   []byte

	kick    chan struct{}
	dropped atomic.Uint64
}

var sinks struct {
	mu sync.Mutex
	m  map[string]*Sink
}

// Open returns the sink for path, opening the file (append, created if
// missing) the first time. /dev/stdout and /dev/stderr are the process's.
func Open(path string) (*Sink, error) {
	sinks.mu.Lock()
	defer sinks.mu.Unlock()
	if s := sinks.m[path]; s != nil {
		return s, nil
	}
	var w io.Writer
	switch path {
	case "/dev/stdout":
		w = os.Stdout
	case "/dev/stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access log file: %w", err)
		}
		w = f
	}
	s := &Sink{path: path, w: w, kick: make(chan struct{}, 1)}
	if sinks.m == nil {
		sinks.m = map[string]*Sink{}
	}
	sinks.m[path] = s
	go s.run()
	return s, nil
}

// write appends one line; the file write happens off the request path.
func (s *Sink) write(line []byte) {
	s.mu.Lock()
	if len(s.buf)+len(line) > maxBuffered {
		s.mu.Unlock()
		s.dropped.Add(1)
		fileStats.linesDropped.Add(1)
		return
	}
	s.buf = append(s.buf, line...)
	full := len(s.buf) >= FlushSize
	s.mu.Unlock()
	fileStats.writeBuffered.Add(1)
	fileStats.totalBuffered.Add(int64(len(line)))
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Sink) run() {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Envoy counts every firing of the flush timer
			// (AccessLogFileImpl::createFlushStructures).
			fileStats.flushedByTimer.Add(1)
		case <-s.kick:
		}
		s.Flush()
	}
}

// Flush writes what is buffered now.
func (s *Sink) Flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	out := s.buf
	s.buf = s.spare[:0]
	s.mu.Unlock()
	if len(out) > 0 {
		fileStats.totalBuffered.Add(-int64(len(out)))
		// A failed write loses those lines, as in Envoy; there is no
		// better place to report it than the count.
		if _, err := s.w.Write(out); err != nil {
			s.dropped.Add(1)
			fileStats.writeFailed.Add(1)
		} else {
			fileStats.writeCompleted.Add(1)
		}
	}
	s.spare = out[:0]
}

// Dropped is how many lines (or failed writes) were lost.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// FlushAll writes every sink's buffered lines (proxy shutdown, tests).
func FlushAll() {
	sinks.mu.Lock()
	all := make([]*Sink, 0, len(sinks.m))
	for _, s := range sinks.m {
		all = append(all, s)
	}
	sinks.mu.Unlock()
	for _, s := range all {
		s.Flush()
	}
}
