package upstream

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/1.1 connection pool, with Envoy's accounting
// (source/common/conn_pool/conn_pool_base.cc: newStream,
// tryCreateNewConnection, attachStreamToClient, onStreamClosed,
// onUpstreamReady, onConnectionEvent):
//
//   - A request that finds an idle connection of its host is attached to it
//     at once; max_requests (requests sent upstream, upstream_rq_active) is
//     checked then, and over it the request fails (upstream_rq_pending_overflow).
//   - A request that finds none becomes pending if max_pending_requests
//     allows (else it fails at once), and stays pending while a connection
//     is dialled for it or until a busy connection frees up, whichever comes
//     first (FIFO). max_requests is checked again when it is handed one.
//   - A connection is dialled when the host has more pending requests than
//     connections being dialled; it counts against max_connections
//     (upstream_cx_active) from the dial until it closes. Over the limit no
//     connection is dialled (upstream_cx_overflow), except that a host with
//     no connection at all always gets one.
//   - A connection that has served max_requests_per_connection requests
//     closes when its last request ends; a failed dial fails every pending
//     request of the host (Envoy's purgePendingStreams).
//
// Every pool operation is a few counter updates under the host's lock.

// poolConn is one HTTP/1.1 connection of a host pool.
type poolConn struct {
	cc        *http.ClientConn
	hp        *hostPool
	opened    time.Time
	idleSince time.Time
	requests  uint32
}

// waiter is a pending request: it receives a connection or an error.
type waiter struct{ ch chan waitResult }

type waitResult struct {
	pc  *poolConn
	err error
}

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan waitResult, 1)} }}

// hostPool is the HTTP/1.1 connections of one cluster to one address.
type hostPool struct {
	t    *Transport
	addr string

	mu         sync.Mutex
	ready      []*poolConn // idle, most recently used last
	busy       int
	connecting int
	pending    []*waiter
	// closed: the transport was replaced or its cluster removed; requests
	// already pending are still served, connections close when done.
	closed bool
	// removed: swept out of the transport's map for being empty; a request
	// that looked it up before looks it up again.
	removed bool
}

// dialCounted marks a pool dial whose connection was already counted in
// upstream_cx_active when the pool decided to dial.
type dialCounted struct{ started atomic.Bool }

type dialCountedKey struct{}

func (t *Transport) hostPool(addr string) *hostPool {
	if v, ok := t.pools.Load(addr); ok {
		return v.(*hostPool)
	}
	v, loaded := t.pools.LoadOrStore(addr, &hostPool{t: t, addr: addr})
	hp := v.(*hostPool)
	select {
	case <-t.closed:
		if !loaded { // made after Close ranged over the pools
			hp.mu.Lock()
			hp.closed = true
			hp.mu.Unlock()
		}
	default:
		t.sweepOnce.Do(func() { go t.sweep() })
	}
	return hp
}

// sweep closes idle connections past the idle timeout (Envoy's
// idle_timeout timer) until the transport is closed.
func (t *Transport) sweep() {
	idle := t.Options.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	tick := time.NewTicker(min(max(idle/4, 100*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-t.closed:
			return
		case <-tick.C:
		}
		t.pools.Range(func(_, v any) bool {
			v.(*hostPool).closeIdle(idle)
			return true
		})
	}
}

// closeIdle closes the idle connections unused for idle or more, and drops
// the pool from the transport's map once it has nothing.
func (hp *hostPool) closeIdle(idle time.Duration) {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	kept := hp.ready[:0]
	for _, pc := range hp.ready {
		if time.Since(pc.idleSince) >= idle || pc.cc.Available() == 0 {
			pc.cc.Close()
			continue
		}
		kept = append(kept, pc)
	}
	clear(hp.ready[len(kept):])
	hp.ready = kept
	if len(hp.ready)+hp.busy+hp.connecting+len(hp.pending) == 0 {
		// Nothing left: forget the address (original-destination clusters
		// see many).
		hp.removed = true
		hp.t.pools.CompareAndDelete(hp.addr, hp)
	}
}

func (t *Transport) limits() *Thresholds {
	if th := t.stats.thresholds.Load(); th != nil {
		return th
	}
	th := DefaultThresholds()
	return &th
}

// tryInc adds one to n unless that would reach more than limit.
func tryInc(n *atomic.Int64, limit uint64) bool {
	for {
		v := n.Load()
		if v >= 0 && uint64(v) >= limit {
			return false
		}
		if n.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// acquire gets a connection to addr for one request: an idle one, or one
// dialled or freed while the request waits pending. It returns an
// *OverflowError when a limit refuses the request, the dial's error when
// the connection for it could not be made, or ctx's error.
func (t *Transport) acquire(ctx context.Context, addr string) (*poolConn, error) {
	hp := t.hostPool(addr)
	st, th := t.stats, t.limits()
	hp.mu.Lock()
	for hp.removed {
		hp.mu.Unlock()
		hp = t.hostPool(addr)
		hp.mu.Lock()
	}
	if pc := hp.popReady(); pc != nil {
		if !hp.attach(pc, th) {
			hp.pushReady(pc)
			hp.mu.Unlock()
			return nil, errMaxRequests
		}
		hp.mu.Unlock()
		return pc, nil
	}
	if !tryInc(&st.RqPendingActive, th.MaxPendingRequests) {
		hp.mu.Unlock()
		st.RqPendingOverflow.Add(1)
		return nil, errMaxPending
	}
	st.RqPendingTotal.Add(1)
	w := waiters.Get().(*waiter)
	hp.pending = append(hp.pending, w)
	hp.tryConnect(th)
	hp.mu.Unlock()
	select {
	case r := <-w.ch:
		waiters.Put(w)
		return r.pc, r.err
	case <-ctx.Done():
	}
	hp.mu.Lock()
	for i, x := range hp.pending {
		if x == w {
			hp.pending = append(hp.pending[:i], hp.pending[i+1:]...)
			hp.mu.Unlock()
			st.RqPendingActive.Add(-1)
			waiters.Put(w)
			return nil, ctx.Err()
		}
	}
	hp.mu.Unlock()
	// Handed a connection (or an error) just as it gave up: pass it on.
	r := <-w.ch
	waiters.Put(w)
	if r.pc != nil {
		t.stats.RqActive.Add(-1)
		hp.release(r.pc, true)
	}
	return nil, ctx.Err()
}

// popReady takes the most recently used idle connection still usable,
// closing the ones that died, idled past the idle timeout or outlived
// max_connection_duration. Called with hp.mu held.
func (hp *hostPool) popReady() *poolConn {
	opts := &hp.t.Options
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	for n := len(hp.ready); n > 0; n = len(hp.ready) {
		pc := hp.ready[n-1]
		hp.ready[n-1] = nil
		hp.ready = hp.ready[:n-1]
		switch {
		case pc.cc.Available() == 0:
		case time.Since(pc.idleSince) >= idle:
		case opts.MaxConnectionDuration > 0 && time.Since(pc.opened) >= opts.MaxConnectionDuration:
			hp.t.stats.CxMaxDuration.Add(1)
		default:
			return pc
		}
		pc.cc.Close() // synchronous, so upstream_cx_active is down before a dial is decided
	}
	return nil
}

func (hp *hostPool) pushReady(pc *poolConn) {
	pc.idleSince = time.Now()
	hp.ready = append(hp.ready, pc)
}

// attach hands pc to a request if max_requests allows (Envoy's
// attachStreamToClient). Called with hp.mu held.
func (hp *hostPool) attach(pc *poolConn, th *Thresholds) bool {
	st := hp.t.stats
	if !tryInc(&st.RqActive, th.MaxRequests) {
		st.RqPendingOverflow.Add(1)
		return false
	}
	hp.busy++
	pc.requests++
	return true
}

// serve hands a connection that became free to the pending requests in
// arrival order, failing those max_requests refuses; with none pending it
// goes idle. Called with hp.mu held.
func (hp *hostPool) serve(pc *poolConn, th *Thresholds) {
	st := hp.t.stats
	for len(hp.pending) > 0 {
		w := hp.pending[0]
		hp.pending[0] = nil
		hp.pending = hp.pending[1:]
		st.RqPendingActive.Add(-1)
		if hp.attach(pc, th) {
			w.ch <- waitResult{pc: pc}
			return
		}
		w.ch <- waitResult{err: errMaxRequests}
	}
	if hp.closed {
		pc.cc.Close()
		return
	}
	hp.pushReady(pc)
}

// tryConnect dials connections while the host has more pending requests
// than connections being dialled (Envoy's tryCreateNewConnections, at most
// three at a time). Called with hp.mu held.
func (hp *hostPool) tryConnect(th *Thresholds) {
	st := hp.t.stats
	for i := 0; i < 3 && len(hp.pending) > hp.connecting; i++ {
		if !tryInc(&st.CxActive, th.MaxConnections) {
			st.CxOverflow.Add(1)
			if len(hp.ready)+hp.busy+hp.connecting > 0 {
				return
			}
			// A host with no connection always gets one, so its pending
			// requests are not stuck behind other hosts' connections.
			st.CxActive.Add(1)
		}
		hp.connecting++
		go hp.dial()
	}
}

// dial opens one connection and hands it to the pending requests.
func (hp *hostPool) dial() {
	t := hp.t
	scheme := "http"
	if t.Options.TLS.Enabled {
		scheme = "https"
	}
	dc := &dialCounted{}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), dialCountedKey{}, dc), t.Options.ConnectTimeout+time.Second)
	cc, err := t.RT.NewClientConn(ctx, scheme, hp.addr)
	cancel()
	hp.mu.Lock()
	hp.connecting--
	th := t.limits()
	if err != nil {
		if !dc.started.Load() {
			t.stats.CxActive.Add(-1)
		}
		purged := hp.pending
		hp.pending = nil
		hp.mu.Unlock()
		t.stats.RqPendingActive.Add(int64(-len(purged)))
		for _, w := range purged {
			w.ch <- waitResult{err: err}
		}
		return
	}
	pc := &poolConn{cc: cc, hp: hp, opened: time.Now()}
	hp.serve(pc, th)
	hp.mu.Unlock()
}

// release ends a request on pc: the connection goes to the next pending
// request, idles, or closes when it cannot be reused, reached
// max_requests_per_connection or its pool was closed.
func (hp *hostPool) release(pc *poolConn, reusable bool) {
	opts := &hp.t.Options
	hp.mu.Lock()
	hp.busy--
	th := hp.t.limits()
	maxed := opts.MaxRequestsPerConnection > 0 && pc.requests >= opts.MaxRequestsPerConnection
	if !reusable || maxed || pc.cc.Err() != nil || pc.cc.Available() == 0 || hp.closed && len(hp.pending) == 0 {
		if maxed {
			hp.t.stats.CxMaxRequests.Add(1)
		}
		// Closed first, so the connection no longer counts when a
		// replacement for the pending requests is decided.
		pc.cc.Close()
		hp.tryConnect(th)
		hp.mu.Unlock()
		return
	}
	hp.serve(pc, th)
	hp.mu.Unlock()
}

// close closes the idle connections and makes busy ones close when their
// request ends.
func (hp *hostPool) close() {
	hp.mu.Lock()
	hp.closed = true
	ready := hp.ready
	hp.ready = nil
	hp.mu.Unlock()
	for _, pc := range ready {
		pc.cc.Close()
	}
}
