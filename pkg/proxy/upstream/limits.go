package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
)

// Circuit breaking, after Envoy's per-cluster resource limits (the
// thresholds of the default routing priority):
//
//   - max_requests: requests sent upstream (upstream_rq_active), checked
//     when a request is handed a connection; pending requests do not count.
//     Over it the request fails at once (upstream_rq_pending_overflow).
//   - max_pending_requests: requests waiting for a connection, including
//     while one is dialled for them; one more fails at once
//     (upstream_rq_pending_overflow).
//   - max_connections: connections from the start of their dial until they
//     close (upstream_cx_active); over it no connection is dialled
//     (upstream_cx_overflow) and pending requests wait for a busy one.
//   - max_retries: retries in flight (upstream_rq_retry_overflow).
//
// Requests go through the host pools of pool.go (HTTP/1.1 and HTTP/2),
// which do this accounting as Envoy's connection pools do. Overflows answer
// 503 with x-envoy-overloaded: true and response flag UO.

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

// Admission is a request admitted to a cluster and its host, holding its
// stream on an upstream connection. Send it with RoundTrip and
// Release it when the request is done (response body read or abandoned).
type Admission struct {
	c  *Cluster
	h  *Host
	pc *poolConn
	// active: the request counts in upstream_rq_active (max_requests).
	active bool
	done   bool
}

// Admit applies the cluster's circuit breakers to a request going to host
// h at addr (h is nil for original-destination clusters) and counts it in
// flight on the host (what least request compares). The request gets its
// stream on a connection here (HTTP/1.1 or HTTP/2), waiting pending for
// one until ctx ends.
// downstreamH2 says the request came in over HTTP/2 (for
// use_downstream_protocol). The error is an *OverflowError (errors.Is
// ErrOverflow) when a limit refuses the request, the dial's error when the
// connection for it failed, or ctx's error.
func (c *Cluster) Admit(ctx context.Context, h *Host, addr string, downstreamH2 bool) (Admission, error) {
	a := Admission{c: c, h: h, active: true}
	if c.Transport == nil { // no pool: max_requests on arrival
		if !tryInc(&c.Stats.RqActive, c.Limits.MaxRequests) {
			c.Stats.RqPendingOverflow.Add(1)
			return Admission{}, errMaxRequests
		}
	} else {
		pc, err := c.TransportFor(h).acquire(ctx, addr, c.UseDownstreamProtocol && downstreamH2)
		if err != nil {
			return Admission{}, err
		}
		a.pc = pc
	}
	if h != nil {
		h.Active.Add(1)
	}
	return a, nil
}

// RoundTrip sends the admitted request on its connection.
//
// A request is sent again (at most maxResends times) on a connection of
// the pool, as net/http's Transport does (persistConn.shouldRetryRequest,
// http2 canRetryError), when the server cannot have acted on it:
//   - HTTP/1.1: a replayable request (idempotent method, no body) that
//     fails on a reused connection before any answer: the server most
//     likely closed the idle connection as it was taken;
//   - HTTP/2: the connection took no new stream (a GOAWAY or close raced
//     the attach; it drains), or, for a request without a body, the server
//     refused the stream: REFUSED_STREAM (a new connection's streams over
//     the server's limit before its SETTINGS arrived) or above its
//     GOAWAY's last stream (the connection drains).
func (a *Admission) RoundTrip(req *http.Request) (*http.Response, error) {
	if a.pc == nil {
		return nil, errors.New("upstream: cluster " + a.c.Name + " has no connection pool")
	}
	if a.pc.hp.t.Options.TLS.Enabled {
		req.URL.Scheme = "https" // the request is the proxy's own copy
	}
	var first error
	for sent := 0; ; sent++ {
		resp, err := a.pc.cc.RoundTrip(req)
		if err == nil {
			a.pc.answered()
			return resp, nil
		}
		if first == nil {
			first = err // the first failure says what happened
		}
		if req.Context().Err() != nil || sent == maxResends {
			return nil, err
		}
		again, drain := a.resend(req, err)
		if !again {
			return resp, err
		}
		old, hp := a.pc, a.pc.hp
		a.pc, a.active = nil, false
		a.c.Stats.RqActive.Add(-1)
		hp.release(old, !drain)
		pc, aerr := hp.t.acquire(req.Context(), hp.addr, hp.set == hp.t.h2pools)
		if aerr != nil {
			return nil, first
		}
		a.pc, a.active = pc, true
	}
}

// maxResends bounds how often one request is sent again on another stream
// (net/http's HTTP/2 transport retries refused streams with backoff until
// the context ends): a server with a lower stream limit than the pool has
// learnt may refuse the streams of the next new connection too, before its
// SETTINGS arrive.
const maxResends = 3

// resend reports whether req, which failed with err on its connection,
// may be sent on another (see RoundTrip), and whether that connection
// must drain.
func (a *Admission) resend(req *http.Request, err error) (again, drain bool) {
	if !a.pc.h2 {
		if errors.Is(err, errServerClosedIdle) {
			return true, true // nothing was sent
		}
		again = replayable(req) && a.pc.hp.reused(a.pc)
		return again, again
	}
	noBody := req.Body == nil || req.Body == http.NoBody
	// net/http's HTTP/2 errors are not exported: these are
	// errClientConnUnusable, errClientConnNotEstablished,
	// errClientConnGotGoAway and a StreamError's text (h2_bundle.go).
	switch msg := err.Error(); {
	case strings.HasSuffix(msg, "http2: client conn not usable"),
		strings.HasSuffix(msg, "http2: client conn could not be established"):
		return true, true
	case strings.HasSuffix(msg, "http2: Transport received Server's graceful shutdown GOAWAY"):
		return noBody, true
	case strings.Contains(msg, "; REFUSED_STREAM; received from peer"):
		a.pc.answered()
		return noBody, false
	}
	return false, false
}

// replayable is net/http's Request.isReplayable: no body, and a method
// that may be sent twice.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// HeaderDoneAtReturn reports whether the request's connection is sluice's
// HTTP/1.1 one (h1conn.go), which writes the request head on RoundTrip's
// goroutine: once RoundTrip returns, nothing reads the request's Header
// map again, so its caller may reuse the map. (net/http's connections,
// HTTP/2 or an HTTP/1.1 one chosen by ALPN, may still be writing it.) A
// resend stays on a connection of the same pool, so of the same kind.
func (a *Admission) HeaderDoneAtReturn() bool {
	if a.pc == nil {
		return false
	}
	_, ok := a.pc.cc.(*h1Conn)
	return ok
}

// LocalAddr is the local address of the connection the request was given
// (Envoy's upstream local address); invalid when there is none.
func (a *Admission) LocalAddr() netip.AddrPort {
	if a.pc == nil {
		return netip.AddrPort{}
	}
	return a.pc.local
}

// Principals are the TLS identities of the request's connection (zero
// for plaintext or when it has none).
func (a *Admission) Principals() Principals {
	if a.pc == nil {
		return Principals{}
	}
	return a.pc.principals
}

// Release ends an admitted request; its connection goes back to the pool
// (or closes). It is safe to call twice.
func (a *Admission) Release() {
	if a.c == nil || a.done {
		return
	}
	a.done = true
	if a.active {
		a.c.Stats.RqActive.Add(-1)
	}
	if a.h != nil {
		a.h.Active.Add(-1)
	}
	if a.pc != nil {
		a.pc.hp.release(a.pc, true)
	}
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
// from a cluster to the one that replaces it (same name), so outlier
// bookkeeping carries over.
type live struct {
	outlier outlierLive
}
