package upstream

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The connection pools, with Envoy's accounting
// (source/common/conn_pool/conn_pool_base.cc: newStream,
// tryCreateNewConnection, attachStreamToClient, onStreamClosed,
// onUpstreamReady, onConnectionEvent; the HTTP/2 client of
// source/common/http/conn_pool_base.cc, MultiplexedActiveClientBase). One
// pool type serves both protocols: an HTTP/1.1 connection carries one
// stream at a time, an HTTP/2 one as many as the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS allow (Istio leaves Envoy's
// max_concurrent_streams at 2^31-1, so the peer's limit is the one).
//
//   - A request that finds a connection of its host with stream capacity
//     is attached to it at once; max_requests (requests sent upstream,
//     upstream_rq_active) is checked then, and over it the request fails
//     (upstream_rq_pending_overflow).
//   - A request that finds none becomes pending if max_pending_requests
//     allows (else it fails at once), and stays pending while a connection
//     is dialled for it or until a connection has capacity again,
//     whichever comes first (FIFO). max_requests is checked again when it
//     is handed one.
//   - A connection is dialled when the host has more pending requests than
//     the connections being dialled will take (one stream each for
//     HTTP/1.1; for HTTP/2 the streams Go's client allows before the
//     peer's SETTINGS, bounded by max_requests_per_connection). It counts
//     against max_connections (upstream_cx_active) from the dial until it
//     closes. Over the limit no connection is dialled
//     (upstream_cx_overflow), except that a host with no connection at all
//     always gets one.
//   - A connection that has taken max_requests_per_connection streams
//     drains: it takes no new stream and closes when its last one ends
//     (upstream_cx_max_requests). A failed dial fails every pending request
//     of the host (Envoy's purgePendingStreams).
//
// Every pool operation is a few counter updates under the host's lock.

// waiter is a pending request: it receives a connection or an error.
type waiter struct{ ch chan waitResult }

type waitResult struct {
	pc  *poolConn
	err error
}

var waiters = sync.Pool{New: func() any { return &waiter{ch: make(chan waitResult, 1)} }}

// poolSet is a transport's host pools of one protocol: the cluster's, or
// HTTP/2 for the HTTP/2 requests of a use_downstream_protocol cluster.
type poolSet struct {
	rt *http.Transport
	// h2: the pool asks for HTTP/2 (h2c, or h2 offered by ALPN); h2c: its
	// connections speak HTTP/2 with prior knowledge.
	h2, h2c bool
	m       sync.Map
}

// hostPool is the connections of one pool set to one address.
type hostPool struct {
	t    *Transport
	set  *poolSet
	addr string

	mu sync.Mutex
	// ready can take a stream (HTTP/1.1: idle; HTTP/2: below its stream
	// limit), most recently used last; busy counts the connections that
	// cannot (full, or draining with streams open).
	ready      []*poolConn
	busy       int
	connecting int
	pending    []*waiter
	// closed: the transport was replaced or its cluster removed; requests
	// already pending are still served, connections close when done.
	closed bool
	// removed: swept out of the pool set for being empty; a request that
	// looked it up before looks it up again.
	removed bool
	// alpnH1: a connection of this HTTP/2 pool got HTTP/1.1 by ALPN (a
	// server without h2), so dials are counted one request each.
	alpnH1 bool
	// peerLimit is the server's SETTINGS_MAX_CONCURRENT_STREAMS as last
	// read on an HTTP/2 connection that had it (0: not known yet); a new
	// connection takes no more streams before its own SETTINGS arrive.
	peerLimit int
}

// dialCounted marks a pool dial whose connection was already counted in
// upstream_cx_active when the pool decided to dial; h2 records that TLS
// negotiated h2 by ALPN.
type dialCounted struct {
	started, h2 atomic.Bool
	// local is the connection's local address (%UPSTREAM_LOCAL_ADDRESS%),
	// set by the dial NewClientConn runs before it returns.
	local netip.AddrPort
	// principals are its TLS identities, set by the same dial.
	principals Principals
}

type dialCountedKey struct{}

// poolSet is the pool set a request goes to: HTTP/2 requests of a
// use_downstream_protocol cluster go to its HTTP/2 pools.
func (t *Transport) poolSet(downstreamH2 bool) *poolSet {
	if downstreamH2 && t.h2pools != nil {
		return t.h2pools
	}
	return &t.pools
}

// eachPool calls f for every host pool of the transport.
func (t *Transport) eachPool(f func(*hostPool)) {
	for _, set := range [2]*poolSet{&t.pools, t.h2pools} {
		if set == nil {
			continue
		}
		set.m.Range(func(_, v any) bool {
			f(v.(*hostPool))
			return true
		})
	}
}

func (t *Transport) hostPool(set *poolSet, addr string) *hostPool {
	if v, ok := set.m.Load(addr); ok {
		return v.(*hostPool)
	}
	v, loaded := set.m.LoadOrStore(addr, &hostPool{t: t, set: set, addr: addr})
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
		t.eachPool((*hostPool).closeIdle)
	}
}

// closeIdle closes the connections with no stream that idled past the idle
// timeout, died or outlived max_connection_duration, and drops the pool
// from its set once it has nothing.
func (hp *hostPool) closeIdle() {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	for i := len(hp.ready) - 1; i >= 0; i-- {
		if pc := hp.ready[i]; pc.streams == 0 && (pc.expired(&hp.t.Options) || pc.cc.Err() != nil || pc.closedByPeer()) {
			hp.setState(pc, connClosed)
		}
	}
	if len(hp.ready)+hp.busy+hp.connecting+len(hp.pending) == 0 {
		// Nothing left: forget the address (original-destination clusters
		// see many).
		hp.removed = true
		hp.set.m.CompareAndDelete(hp.addr, hp)
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

// acquire gets a stream on a connection to addr for one request: on a
// connection with capacity, or one dialled or freed while the request
// waits pending. downstreamH2 picks the HTTP/2 pools of a
// use_downstream_protocol cluster. It returns an *OverflowError when a
// limit refuses the request, the dial's error when the connection for it
// could not be made, or ctx's error.
func (t *Transport) acquire(ctx context.Context, addr string, downstreamH2 bool) (*poolConn, error) {
	set := t.poolSet(downstreamH2)
	hp := t.hostPool(set, addr)
	st, th := t.stats, t.limits()
	hp.mu.Lock()
	for hp.removed {
		hp.mu.Unlock()
		hp = t.hostPool(set, addr)
		hp.mu.Lock()
	}
	if pc := hp.takeReady(); pc != nil {
		if !hp.attach(pc, th) {
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

// takeReady returns the most recently used connection that can take a
// stream, closing (or draining, with streams open) the ones that died,
// idled past the idle timeout or outlived max_connection_duration, and
// setting aside the full ones. Called with hp.mu held.
func (hp *hostPool) takeReady() *poolConn {
	for n := len(hp.ready); n > 0; n = len(hp.ready) {
		pc := hp.ready[n-1]
		if pc.expired(&hp.t.Options) {
			pc.draining = true
		}
		if pc.hasCapacity() {
			return pc
		}
		hp.place(pc) // closed, or busy until a stream ends
	}
	return nil
}

// attach gives a request a stream on pc if max_requests allows (Envoy's
// attachStreamToClient): the connection drains once it has taken
// max_requests_per_connection streams. Called with hp.mu held and pc
// able to take a stream.
func (hp *hostPool) attach(pc *poolConn, th *Thresholds) bool {
	st := hp.t.stats
	if !tryInc(&st.RqActive, th.MaxRequests) {
		st.RqPendingOverflow.Add(1)
		return false
	}
	pc.streams++
	pc.requests++
	if m := hp.t.Options.MaxRequestsPerConnection; m > 0 && pc.requests >= m {
		st.CxMaxRequests.Add(1)
		pc.draining = true
	}
	if !pc.h2 || pc.draining || pc.streams >= pc.limit {
		// Full or draining now. (An HTTP/2 connection below the limit
		// hasCapacity just read stays ready.)
		hp.place(pc)
	}
	return true
}

// serve hands streams of pc, which was dialled or had a stream end, to the
// pending requests in arrival order while it has capacity, failing those
// max_requests refuses (Envoy's onUpstreamReady); then places it. Called
// with hp.mu held.
func (hp *hostPool) serve(pc *poolConn, th *Thresholds) {
	st := hp.t.stats
	for len(hp.pending) > 0 && pc.hasCapacity() {
		w := hp.pending[0]
		hp.pending[0] = nil
		hp.pending = hp.pending[1:]
		st.RqPendingActive.Add(-1)
		if hp.attach(pc, th) {
			w.ch <- waitResult{pc: pc}
		} else {
			w.ch <- waitResult{err: errMaxRequests}
		}
	}
	hp.place(pc)
}

// connectCapacity is how many pending requests a connection being dialled
// is counted to take (Envoy's connecting_stream_capacity_): one for
// HTTP/1.1; for HTTP/2 the streams Go's client sends before the peer's
// SETTINGS arrive (or the server's limit, once known), bounded by
// max_requests_per_connection.
func (hp *hostPool) connectCapacity() int {
	if !hp.set.h2 || hp.alpnH1 {
		return 1
	}
	n := h2InitialStreams
	if hp.peerLimit > 0 {
		n = min(n, hp.peerLimit)
	}
	if m := hp.t.Options.MaxRequestsPerConnection; m > 0 && int(m) < n {
		n = int(m)
	}
	return n
}

// tryConnect dials connections while the host has more pending requests
// than the connections being dialled will take (Envoy's
// tryCreateNewConnections, at most three at a time). Called with hp.mu
// held.
func (hp *hostPool) tryConnect(th *Thresholds) {
	st := hp.t.stats
	per := hp.connectCapacity()
	for i := 0; i < 3 && len(hp.pending) > hp.connecting*per; i++ {
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
	target := hp.addr
	if strings.HasPrefix(target, pipePrefix) {
		target = net.JoinHostPort(target, "80") // net/http wants a port; dialRaw reads the socket path back
	}
	dc := &dialCounted{}
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), dialCountedKey{}, dc), t.Options.ConnectTimeout+time.Second)
	var cc clientConn
	var err error
	if hp.set.h2 {
		cc, err = hp.set.rt.NewClientConn(ctx, scheme, target)
	} else {
		cc, err = t.dialH1(ctx, target)
	}
	cancel()
	if err != nil {
		hp.dialFailed(err, dc)
		return
	}
	now := time.Now()
	pc := &poolConn{cc: cc, hp: hp, h2: hp.set.h2c || dc.h2.Load(), opened: now, idleSince: now, limit: 1, local: dc.local,
		principals: dc.principals}
	if pc.h2 {
		pc.limit = max(cc.Available()+cc.InFlight(), 1)
		t.stats.CxHTTP2Total.Add(1)
	} else {
		t.stats.CxHTTP1Total.Add(1)
	}
	hp.mu.Lock()
	if pc.h2 && hp.peerLimit > 0 {
		pc.limit = min(pc.limit, hp.peerLimit)
	}
	hp.connecting--
	hp.alpnH1 = hp.set.h2 && !pc.h2
	th := t.limits()
	hp.serve(pc, th)
	if hp.set.h2 {
		// More pending than the new connection took (its stream limit, or
		// HTTP/1.1 by ALPN): dial for them.
		hp.tryConnect(th)
	}
	hp.mu.Unlock()
}

// dialFailed fails every pending request of the host with the dial's
// error (Envoy's purgePendingStreams).
func (hp *hostPool) dialFailed(err error, dc *dialCounted) {
	hp.mu.Lock()
	hp.connecting--
	if !dc.started.Load() {
		hp.t.stats.CxActive.Add(-1)
	}
	purged := hp.pending
	hp.pending = nil
	hp.mu.Unlock()
	hp.t.stats.RqPendingActive.Add(int64(-len(purged)))
	for _, w := range purged {
		w.ch <- waitResult{err: err}
	}
}

// release ends a stream on pc (Envoy's onStreamClosed): the connection
// serves the next pending request, goes back to the ready ones, or closes
// when it drains (max_requests_per_connection, its pool closed) or cannot
// be reused. reusable false says the request failed on it in a way that
// leaves the connection unusable: it drains.
func (hp *hostPool) release(pc *poolConn, reusable bool) {
	hp.mu.Lock()
	pc.streams--
	if pc.streams == 0 {
		pc.idleSince = time.Now()
	}
	// A closed connection has nothing Available (HTTP/2: hasCapacity sees
	// it).
	if !reusable || !pc.h2 && pc.cc.Available() == 0 {
		pc.draining = true
	}
	if pc.state == connReady && !pc.draining && !hp.closed && len(hp.pending) == 0 {
		// An HTTP/2 connection that had room still has: it stays ready
		// (takeReady checks it with Go's connection before its next
		// stream).
		hp.mu.Unlock()
		return
	}
	th := hp.t.limits()
	hp.serve(pc, th)
	if pc.state == connClosed {
		// It no longer counts: a replacement for the pending requests may
		// be dialled.
		hp.tryConnect(th)
	}
	hp.mu.Unlock()
}

// reused reports whether pc carried other requests than the one that
// failed on it.
func (hp *hostPool) reused(pc *poolConn) bool {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return pc.requests > 1
}

// close closes the connections with no stream and drains the others,
// once no request is pending.
func (hp *hostPool) close() {
	hp.mu.Lock()
	hp.closed = true
	for i := len(hp.ready) - 1; i >= 0; i-- {
		hp.place(hp.ready[i])
	}
	hp.mu.Unlock()
}
