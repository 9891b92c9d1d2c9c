package upstream

import (
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// poolConn is one connection of a host pool: HTTP/1.1 (one stream at a
// time) or HTTP/2 (streams multiplexed up to the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS). Its fields are guarded by its host
// pool's lock.
type poolConn struct {
	cc    clientConn
	local netip.AddrPort // the connection's local address
	// principals are the connection's TLS identities (zero: plaintext).
	principals Principals
	hp         *hostPool
	h2         bool
	state      connState
	opened     time.Time
	idleSince  time.Time
	// requests is the streams attached over the connection's life
	// (max_requests_per_connection); streams those not yet ended.
	requests uint32
	streams  int
	// limit is how many streams the connection takes at once: 1 for
	// HTTP/1.1; for HTTP/2 the peer's SETTINGS_MAX_CONCURRENT_STREAMS as
	// Go's client last reported it (its initial 100 until the peer's
	// SETTINGS arrive, 1000 when they name none).
	limit int
	// draining: the connection takes no new stream and closes when its
	// last one ends (max_requests_per_connection reached, max connection
	// duration, GOAWAY or an error, its pool closed).
	draining bool
	// settled: the server answered on the connection (or refused a
	// stream), so its SETTINGS, which come first, have been read and Go
	// reports the server's own stream limit. Set without the pool's lock.
	settled atomic.Bool
}

// clientConn is a pool connection's protocol side: net/http's
// http.ClientConn for HTTP/2 (and ALPN-negotiated pools), h1Conn for
// HTTP/1.1.
type clientConn interface {
	RoundTrip(*http.Request) (*http.Response, error)
	// Available is how many more requests it takes now; InFlight how
	// many it carries; Err why it is unusable.
	Available() int
	InFlight() int
	Err() error
	Close() error
}

var _ clientConn = (*http.ClientConn)(nil)

// answered records that the server answered (or refused a stream) on
// pc: its stream limit is the server's from now on.
func (pc *poolConn) answered() {
	if pc.h2 && !pc.settled.Load() {
		pc.settled.Store(true)
	}
}

// connState is which of its host pool's sets a connection is in, after
// Envoy's ActiveClient states (conn_pool_base.h).
type connState uint8

const (
	// The zero state: dialled, not yet placed.
	_ connState = iota
	// connReady: in hostPool.ready, able to take a stream.
	connReady
	// connBusy: counted in hostPool.busy: no stream capacity left, or
	// draining with streams still open.
	connBusy
	connClosed
)

// h2InitialStreams is the stream limit Go's HTTP/2 client assumes until the
// peer's SETTINGS arrive (x/net/http2 initialMaxConcurrentStreams), used as
// a dialling HTTP/2 connection's capacity for the pending requests.
const h2InitialStreams = 100

// hasCapacity reports whether pc can take one more stream now. For HTTP/2
// it refreshes the stream limit from Go's connection, and marks the
// connection draining when Go takes no new stream on it below that limit
// (closed, GOAWAY received, or closing). Called with hp.mu held.
func (pc *poolConn) hasCapacity() bool {
	if pc.draining {
		return false
	}
	if !pc.h2 {
		return pc.streams == 0
	}
	avail, inFlight := pc.cc.Available(), pc.cc.InFlight()
	if avail == 0 && inFlight == 0 {
		// Go's two counts are read under two locks: streams that ended
		// between the reads look like a connection taking nothing. With
		// nothing in flight a usable connection has room, so read again.
		avail = pc.cc.Available()
	}
	switch {
	case avail > 0:
		// Also when the pool has as many streams as the limit it knew:
		// the peer's SETTINGS may have raised it.
		pc.limit = avail + inFlight
		if pc.settled.Load() {
			pc.hp.peerLimit = pc.limit
		} else if pc.hp.peerLimit > 0 {
			// Before the server's SETTINGS, the limit its other
			// connections have.
			pc.limit = min(pc.limit, pc.hp.peerLimit)
		}
		return pc.streams < pc.limit
	case inFlight > 0 && pc.settled.Load():
		// Full for Go after the server's SETTINGS: its limit is at most
		// what Go has in flight (a new connection's streams over it were
		// refused). Learn that bound now, so the connections dialled next
		// do not take more streams than the server allows before their
		// own SETTINGS arrive. (A connection that took a GOAWAY also
		// reads full; it drains, and the next one to settle says the
		// real limit.)
		if inFlight < pc.limit {
			pc.limit = inFlight
			pc.hp.peerLimit = inFlight
		}
		// As below: with no stream of the pool open, Go is still counting
		// ended ones, and sends the stream when it frees the slot.
		return pc.streams == 0
	case pc.streams >= pc.limit:
		return false
	case inFlight == 0:
		// Go takes no stream at all: closed, GOAWAY received, or closing.
		pc.draining = true
		return false
	case pc.streams == 0:
		// Go still counts streams the pool has ended (one finishing, a
		// reset one awaiting the peer's PING acknowledgement): the stream
		// is sent when Go frees the slot, as Envoy's codec queues a stream
		// over the limit.
		return true
	}
	// Full for Go (the peer's SETTINGS may have lowered the limit): the
	// next stream to end says more.
	return false
}

// closedByPeer reports whether the server closed an idle HTTP/1.1
// connection (HTTP/2 ones are watched by their read goroutine).
func (pc *poolConn) closedByPeer() bool {
	h, ok := pc.cc.(*h1Conn)
	return ok && !h.idleAlive()
}

// expired reports whether a connection must take no new stream: dead
// (HTTP/1.1; HTTP/2 connections are checked by hasCapacity), idle past the
// idle timeout, or past the maximum connection duration (Envoy drains such
// a connection). time.Since reads only the monotonic clock.
func (pc *poolConn) expired(opts *TransportOptions) bool {
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	switch {
	case !pc.h2 && pc.cc.Available() == 0:
	case pc.streams == 0 && time.Since(pc.idleSince) >= idle:
	case opts.MaxConnectionDuration > 0 && time.Since(pc.opened) >= opts.MaxConnectionDuration:
		pc.hp.t.stats.CxMaxDuration.Add(1)
	default:
		return false
	}
	return true
}

// setState moves pc between its pool's sets (Envoy's
// transitionActiveClientState); connClosed closes it. Called with hp.mu
// held.
func (hp *hostPool) setState(pc *poolConn, s connState) {
	if pc.state == s {
		return
	}
	switch pc.state {
	case connReady:
		for i := len(hp.ready) - 1; i >= 0; i-- {
			if hp.ready[i] == pc {
				copy(hp.ready[i:], hp.ready[i+1:])
				hp.ready[len(hp.ready)-1] = nil
				hp.ready = hp.ready[:len(hp.ready)-1]
				break
			}
		}
	case connBusy:
		hp.busy--
	case connClosed:
		return
	}
	pc.state = s
	switch s {
	case connReady:
		hp.ready = append(hp.ready, pc)
	case connBusy:
		hp.busy++
	case connClosed:
		// Synchronous, so upstream_cx_active is down before a dial is
		// decided.
		pc.cc.Close()
	}
}

// place puts pc where its state says after a stream was attached or ended:
// closed when draining with no stream left, busy when draining or full,
// ready otherwise. A closed pool's connections drain once no request is
// pending. Called with hp.mu held.
func (hp *hostPool) place(pc *poolConn) {
	if hp.closed && len(hp.pending) == 0 {
		pc.draining = true
	}
	switch {
	case pc.hasCapacity():
		hp.setState(pc, connReady)
	case pc.draining && pc.streams == 0:
		hp.setState(pc, connClosed)
	default:
		hp.setState(pc, connBusy)
	}
}
