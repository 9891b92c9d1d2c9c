package serverconn

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Conns are a server's open connections, and whether it is closing.
type Conns[C comparable] struct {
	mu       sync.Mutex
	set      map[C]struct{}
	draining atomic.Bool
}

// Add adds c, unless the server is closing (false: the caller closes c).
func (s *Conns[C]) Add(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	if s.set == nil {
		s.set = make(map[C]struct{})
	}
	s.set[c] = struct{}{}
	return true
}

// Remove removes c.
func (s *Conns[C]) Remove(c C) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, c)
}

// Drain marks the server closing: no connection is added from now on.
func (s *Conns[C]) Drain() { s.draining.Store(true) }

// Draining reports whether the server is closing.
func (s *Conns[C]) Draining() bool { return s.draining.Load() }

// Count calls keep for every connection (under the lock: keep must not
// call back) and returns how many it kept.
func (s *Conns[C]) Count(keep func(C) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.set {
		if keep(c) {
			n++
		}
	}
	return n
}

// Await calls left every 10 ms until it reports none left (true) or ctx
// ends (false): a graceful shutdown's wait.
func Await(ctx context.Context, left func() int) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for left() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
