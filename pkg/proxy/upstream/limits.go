package upstream

import (
	"context"
	"errors"
	"math"
	"sync"
)

// Circuit breaking, after Envoy's per-cluster resource limits (the
// thresholds of the default routing priority):
//
//   - max_requests: requests in flight to the cluster, any protocol. Over
//     it a request fails at once (upstream_rq_pending_overflow).
//   - max_connections: for HTTP/1.1 every request in flight holds its own
//     connection, so the busy connections are the requests in flight. A
//     request that finds all max_connections busy waits for one
//     (upstream_cx_overflow), except that, like Envoy, a host with no
//     request in flight may always get a connection.
//   - max_pending_requests: how many may wait so; one more fails at once
//     (upstream_rq_pending_overflow).
//   - max_retries: retries in flight (upstream_rq_retry_overflow).
//
// Envoy dispatches a request that arrives while its host's only connection
// is still being opened as pending too; sluice counts only requests that
// actually wait. Overflows answer 503 with x-envoy-overloaded: true and
// response flag UO.

// Envoy's defaults when a cluster sets no thresholds.
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Thresholds are a cluster's circuit breaker limits.
type Thresholds struct {
	MaxConnections     uint64
	MaxPendingRequests uint64
	MaxRequests        uint64
	MaxRetries         uint64
}

// DefaultThresholds are Envoy's defaults.
func DefaultThresholds() Thresholds {
	return Thresholds{DefaultMaxConnections, DefaultMaxPendingRequests, DefaultMaxRequests, DefaultMaxRetries}
}

// ErrOverflow is a request refused by a circuit breaker.
var ErrOverflow = errors.New("upstream overflow")

// OverflowError says which limit refused a request.
type OverflowError struct{ Limit string }

func (e *OverflowError) Error() string { return "circuit breaker open: " + e.Limit }
func (e *OverflowError) Unwrap() error { return ErrOverflow }

var (
	errMaxRequests = &OverflowError{Limit: "max_requests"}
	errMaxPending  = &OverflowError{Limit: "max_pending_requests"}
)

// Admission is a request admitted to a cluster and its host; Release it
// when the request is done (response body read or abandoned).
type Admission struct {
	c    *Cluster
	h    *Host
	slot bool // holds an HTTP/1.1 connection slot
	done bool
}

// Admit applies the cluster's circuit breakers to a request going to host
// h (nil for original-destination clusters) and counts it in flight on the
// host (what least request compares). It may wait (pending) for a
// connection slot until ctx ends. The error is an *OverflowError
// (errors.Is ErrOverflow) on overflow, or ctx's error if the request gave
// up waiting.
func (c *Cluster) Admit(ctx context.Context, h *Host) (Admission, error) {
	st, th := c.Stats, &c.Limits
	if uint64(st.RqActive.Load()) >= th.MaxRequests {
		st.RqPendingOverflow.Add(1)
		return Admission{}, errMaxRequests
	}
	if !c.limitsConnections() {
		return c.admitted(h, false), nil
	}
	l := c.live
	l.mu.Lock()
	// Envoy lets a host with no connection open one even over the limit;
	// for HTTP/1.1 a host with nothing in flight is such a host. The check
	// and the count happen under the lock, so two requests cannot both
	// take the exception.
	if l.busy < th.MaxConnections || (h != nil && h.Active.Load() == 0) {
		l.busy++
		a := c.admitted(h, true)
		l.mu.Unlock()
		return a, nil
	}
	st.CxOverflow.Add(1)
	if uint64(len(l.waiters)) >= th.MaxPendingRequests {
		l.mu.Unlock()
		st.RqPendingOverflow.Add(1)
		return Admission{}, errMaxPending
	}
	w := make(chan struct{})
	l.waiters = append(l.waiters, w)
	st.RqPendingActive.Add(1)
	st.RqPendingTotal.Add(1)
	l.mu.Unlock()
	select {
	case <-w:
		// The releaser handed its slot (busy unchanged) to us.
		st.RqPendingActive.Add(-1)
	case <-ctx.Done():
		l.mu.Lock()
		removed := false
		for i, x := range l.waiters {
			if x == w {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				removed = true
				break
			}
		}
		l.mu.Unlock()
		st.RqPendingActive.Add(-1)
		if !removed {
			// Handed a slot just as we gave up: pass it on.
			l.release()
		}
		return Admission{}, ctx.Err()
	}
	if uint64(st.RqActive.Load()) >= th.MaxRequests {
		l.release()
		st.RqPendingOverflow.Add(1)
		return Admission{}, errMaxRequests
	}
	return c.admitted(h, true), nil
}

func (c *Cluster) admitted(h *Host, slot bool) Admission {
	c.Stats.RqActive.Add(1)
	if h != nil {
		h.Active.Add(1)
	}
	return Admission{c: c, h: h, slot: slot}
}

// limitsConnections reports whether max_connections binds: HTTP/1.1
// clusters with a finite limit (HTTP/2 multiplexes on one connection per
// host).
func (c *Cluster) limitsConnections() bool {
	return !c.HTTP2 && !c.UseDownstreamProtocol && c.Limits.MaxConnections != 0 && c.Limits.MaxConnections < math.MaxUint32
}

// Release ends an admitted request. It is safe to call twice.
func (a *Admission) Release() {
	if a.c == nil || a.done {
		return
	}
	a.done = true
	a.c.Stats.RqActive.Add(-1)
	if a.h != nil {
		a.h.Active.Add(-1)
	}
	if a.slot {
		a.c.live.release()
	}
}

// release frees a connection slot, handing it to the first waiter.
func (l *live) release() {
	l.mu.Lock()
	if len(l.waiters) > 0 {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.mu.Unlock()
		close(w)
		return
	}
	if l.busy > 0 {
		l.busy--
	}
	l.mu.Unlock()
}

// TryRetry takes a retry slot (max_retries). It returns false, counting
// upstream_rq_retry_overflow, when the cluster has as many retries in
// flight as it allows; the retry must then not be sent. Call ReleaseRetry
// when a retry that was allowed completes.
func (c *Cluster) TryRetry() bool {
	st := c.Stats
	for {
		n := st.RqRetryActive.Load()
		if uint64(n) >= c.Limits.MaxRetries {
			st.RqRetryOverflow.Add(1)
			return false
		}
		if st.RqRetryActive.CompareAndSwap(n, n+1) {
			st.RqRetry.Add(1)
			return true
		}
	}
}

// ReleaseRetry returns a slot taken by TryRetry.
func (c *Cluster) ReleaseRetry() { c.Stats.RqRetryActive.Add(-1) }

// live is the part of a cluster that outlives config pushes: it is handed
// from a cluster to the one that replaces it (same name), so requests in
// flight on the old one and new ones share connection slots, waiters and
// outlier bookkeeping.
type live struct {
	mu      sync.Mutex
	busy    uint64 // connection slots held (HTTP/1.1 requests in flight)
	waiters []chan struct{}

	outlier outlierLive
}
