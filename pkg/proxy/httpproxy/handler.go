// Package httpproxy is the proxy's HTTP connection manager: filter chain,
// path normalization, route match, upgrade decision, then the chain's
// http_filters in order (pkg/proxy/filters/*, the router last), with the
// proxy's own answers each saying why.
package httpproxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
)

// Options configure a listener's handler.
type Options struct {
	// Listener is the name of the listener this handler serves.
	Listener string
	// Runtime is the proxy's current runtime, swapped on every update.
	Runtime *atomic.Pointer[dataplane.Runtime]
	// Shared holds what all of a proxy's handlers share (the counters and
	// the filters' proxy-wide state); nil makes one for this handler alone.
	Shared *Shared
}

// Handler serves one listener.
type Handler struct {
	opts   Options
	shared *Shared
	stats  *Stats
}

// New returns the handler for one listener.
func New(opts Options) *Handler {
	if opts.Shared == nil {
		opts.Shared = NewShared()
	}
	if opts.Shared.Tracing == nil {
		opts.Shared.Tracing = tracing.NewEnv(tracing.EnvOptions{NodeID: "sluice", ServiceCluster: "sluice", Clusters: ClustersOf(opts.Runtime)})
	}
	return &Handler{opts: opts, shared: opts.Shared, stats: opts.Shared.Stats}
}

// ServeHTTP is the connection manager: it picks the filter chain, applies
// the chain's path normalization, matches the route once, refuses upgrades
// the config does not allow, and runs the chain's http_filters in order
// (filters.go); any filter may answer, and the router filter is last.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	// The request's one allocation of its own: it goes through the
	// filters' Decode and so to the heap.
	q := &request{}
	s, info := &q.s, &q.s.Info
	info.Start = time.Now()
	q.w = meteredWriter{ResponseWriter: rw, info: info}
	var w http.ResponseWriter = &q.w
	if r.Body != nil && r.Body != http.NoBody {
		q.body = meteredBody{ReadCloser: r.Body, info: info}
		r.Body = &q.body
	}
	s.W, s.R = w, r
	defer h.finish(q)
	rt := h.opts.Runtime.Load()
	l := rt.Listeners[h.opts.Listener]
	if l == nil {
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "listener "+h.opts.Listener+" is being removed")
		return
	}
	ci := connOf(r)
	s.Conn = &ci.Conn
	q.inbound = l.Inbound
	h.exchangePeers(q)
	chain := h.chainFor(l, ci)
	if chain == nil {
		// A push left this connection without a chain (its chain was
		// removed, or became TCP): Envoy drains such connections.
		w.Header().Set("Connection", "close")
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "listener "+h.opts.Listener+" no longer has a filter chain for this connection")
		return
	}
	q.chain = chain
	info.StatPrefix = chain.StatPrefix
	if chain.Stats != nil && h.shared.Metrics != nil {
		q.services = rt.Services
		if isGRPC(r) {
			q.w.msgs, q.body.msgs = &q.respMsgs, &q.reqMsgs
		}
	}
	// Envoy's connection manager gives a request without one an
	// x-request-id before any filter runs (generate_request_id), so the
	// filters, the access log and the upstream all see the same id.
	if _, ok := r.Header["X-Request-Id"]; !ok {
		// The value's slice lives in the request record (len == cap, so
		// an append copies it): one allocation fewer per request.
		q.requestID[0] = httpfilter.RequestID()
		r.Header["X-Request-Id"] = q.requestID[:]
	}
	applyXFCC(r, ci, chain.XFCC)
	if chain.Tracer != nil {
		h.startSpan(q, chain)
	}
	switch chain.Tracing {
	case dataplane.TracingIngress:
		// Envoy takes an inbound request's decorator operation for its own
		// span and removes the header, so the service never sees it.
		delete(r.Header, router.DecoratorHeader)
	case dataplane.TracingEgress:
		info.EgressTracing = true
	}
	path, ok := h.normalizePath(w, r, chain, info)
	if !ok {
		return
	}
	table := rt.Routes[chain.RouteName]
	if table == nil {
		h.localReply(w, info, http.StatusServiceUnavailable, httpfilter.FlagNR, "route config "+chain.RouteName+" has not arrived yet")
		return
	}
	authority := r.Host
	if chain.StripPort {
		authority = hostport.StripPort(authority)
	}
	rte := table.MatchPath(r, authority, path)
	if rte == nil {
		// Envoy answers 404 with no body (response flag NR).
		info.Flags |= httpfilter.FlagNR
		info.Status = http.StatusNotFound
		info.Details = "no route matched"
		w.Header().Set("X-Sluice-Reason", info.Details)
		w.Header().Set(httpfilter.ResponseFlagsHeader, info.Flags.String())
		w.WriteHeader(http.StatusNotFound)
		return
	}
	info.Route = rte.Name
	nameSpan(q, rte)
	if !h.checkUpgrade(w, r, chain, rte, info) {
		return
	}
	s.Route, s.Clusters, s.Internal, s.InternalServer = rte, rt.Clusters, rt.Internal, h
	s.Routes, s.Authority = table, authority
	s.Listener, s.Proxy = chain.ListenerScope(h.stats), h.stats
	runFilters(s, chain)
}

// chainFor is the HTTP chain serving a request of connection ci: the one
// the connection matches in the runtime in force (so pushed filters and
// routes apply to open connections), which must terminate TLS exactly
// when the connection's chain did; nil when there is none.
func (h *Handler) chainFor(l *dataplane.Listener, ci *ConnInfo) *dataplane.FilterChain {
	if l == ci.Listener && ci.Chain != nil {
		return ci.Chain
	}
	c := l.Select(&ci.Match)
	if c == nil || c.TCP != nil || (c.TLS == nil) != (ci.Conn.TLS == nil) {
		return nil
	}
	return c
}

// exchangePeers is Istio's HTTP metadata exchange: a server sidecar takes
// the client's identity out of the request and names itself in the
// answer; a client sidecar (or gateway) names itself in the request and
// has the router take the server's identity out of the answer.
func (h *Handler) exchangePeers(q *request) {
	m := h.shared.Metrics
	if m == nil {
		return
	}
	if q.inbound {
		q.s.Info.PeerMetadata = istiometrics.TakePeer(q.s.R.Header)
		m.SetPeerHeaders(q.w.Header())
		return
	}
	m.SetPeerHeaders(q.s.R.Header)
	q.s.Info.TakeUpstreamPeer = true
}

// finish records a completed request's response flags, writes the
// chain's access log and records its standard metrics. It runs deferred, so a request whose response was
// cut short (a panic aborting the stream) is counted and logged too.
func (h *Handler) finish(q *request) {
	info := &q.s.Info
	finishSpan(q)
	if info.Flags != 0 {
		ls := q.s.Listener
		if ls == nil || q.chain == nil || info.StatPrefix != q.chain.StatPrefix {
			ls = h.stats.Listener(info.StatPrefix)
		}
		ls.CountFlags(info.Flags)
	}
	if c := q.chain; c != nil && len(c.AccessLog) > 0 {
		if info.Details == "" {
			// An answer a filter made without LocalReply (a CORS
			// preflight, a gRPC fault abort) says why in its reason header.
			info.Details = httpfilter.FirstHeader(q.w.Header(), "X-Sluice-Reason")
		}
		q.entry = accesslog.Entry{Info: info, Conn: q.s.Conn, Req: q.s.R, RespHeader: q.w.Header(), End: time.Now()}
		c.AccessLog.Log(&q.entry)
	}
	if m := h.shared.Metrics; m != nil && q.chain != nil && q.chain.Stats != nil {
		// Only a chain with the istio.stats filter records (the filter's
		// config: dataplane/stats.go).
		r, rc := q.s.R, routeCluster(q.s.Route)
		cl := info.Cluster
		if cl == "" {
			cl = rc
		}
		m.RecordHTTP(&istiometrics.HTTPRequest{Info: info, Config: q.chain.Stats, Conn: q.s.Conn, Inbound: q.inbound,
			Request: r, ResponseHeader: q.w.Header(), GRPC: isGRPC(r), GRPCStatus: grpcStatus(q.w.Header()),
			RequestMessages: q.reqMsgs.Count(), ResponseMessages: q.respMsgs.Count(),
			RouteCluster: rc, Service: q.services[cl]})
	}
}

// grpcStatus is the answer's grpc-status: in its headers (a
// trailers-only answer) or its trailers.
func grpcStatus(h http.Header) string {
	if v := firstHeader(h, "Grpc-Status"); v != "" {
		return v
	}
	return firstHeader(h, http.TrailerPrefix+"Grpc-Status")
}

// routeCluster is the cluster the matched route names (the first of a
// weighted split: they share the service host), for a request answered
// before the router picked one (a fault abort, RBAC): Istio's stats take
// the destination service from the route entry's cluster.
func routeCluster(rt httpfilter.Route) string {
	rte, ok := rt.(*router.Route)
	if !ok || rte == nil || rte.Action.Kind != router.Forward {
		return ""
	}
	if rte.Action.Cluster != "" {
		return rte.Action.Cluster
	}
	if len(rte.Action.Weighted) > 0 {
		return rte.Action.Weighted[0].Name
	}
	return ""
}

// localReply is an answer the proxy makes itself: a one-line plain-text
// body, the same line in X-Sluice-Reason, and the response flags (flag is
// added to the request's) in X-Sluice-Response-Flags.
// localReply is an answer the proxy makes itself: a one-line plain-text
// body, the same line in X-Sluice-Reason, and the response flags (flag is
// added to the request's) in X-Sluice-Response-Flags.
func (h *Handler) localReply(w http.ResponseWriter, info *httpfilter.RequestInfo, code int, flag httpfilter.Flags, reason string) {
	h.reply(w, info, code, flag, reason, reason)
}

func (h *Handler) reply(w http.ResponseWriter, info *httpfilter.RequestInfo, code int, flag httpfilter.Flags, reason, body string) {
	httpfilter.LocalReply(w, info, code, flag, reason, body)
}
