// Package httpproxy is the proxy's HTTP request path: listener -> route
// table -> route action -> cluster -> host, with the proxy's own answers
// (no route, no cluster, no host, upstream failure) each saying why.
package httpproxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/runtime"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// Options configure a listener's handler.
type Options struct {
	// Listener is the name of the listener this handler serves.
	Listener string
	// Runtime is the proxy's current runtime, swapped on every update.
	Runtime *atomic.Pointer[runtime.Runtime]
}

// Handler serves one listener.
type Handler struct {
	opts Options
}

// New returns the handler for one listener.
func New(opts Options) *Handler { return &Handler{opts: opts} }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.opts.Runtime.Load()
	l := rt.Listeners[h.opts.Listener]
	if l == nil {
		localReply(w, http.StatusServiceUnavailable, "listener "+h.opts.Listener+" is being removed")
		return
	}
	chain := l.Chains[0]
	if r.TLS != nil {
		if c := l.ChainFor(r.TLS.ServerName); c != nil {
			chain = c
		}
	}
	table := rt.Routes[chain.RouteName]
	if table == nil {
		localReply(w, http.StatusServiceUnavailable, "route config "+chain.RouteName+" has not arrived yet")
		return
	}
	authority := r.Host
	if chain.StripPort {
		authority = stripPort(authority)
	}
	rte := table.MatchAuthority(r, authority)
	if rte == nil {
		// Envoy answers 404 with no body (response flag NR).
		w.Header().Set("X-Sluice-Reason", "no route matched")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch rte.Action.Kind {
	case router.Redirect:
		w.Header().Set("Location", rte.Location(r))
		rte.RespOps.Apply(w.Header())
		w.WriteHeader(rte.RedirectCode())
	case router.DirectResponse:
		rte.RespOps.Apply(w.Header())
		if len(rte.Action.Body) > 0 {
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "text/plain")
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(rte.Action.Body)))
		}
		w.WriteHeader(rte.Action.Status)
		w.Write(rte.Action.Body)
	default:
		h.forward(w, r, rt, rte)
	}
}

// forward runs the route chain for a forwarding route: pick the cluster,
// send one attempt, write the answer. Resilience (fault, timeout, retry,
// mirror) wraps the attempt; cluster policy (limits, picking, outlier
// records) lives in the attempt.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rt *runtime.Runtime, rte *router.Route) {
	name, arm := rte.Action.PickCluster()
	cl := rt.Clusters[name]
	if cl == nil {
		localReply(w, http.StatusServiceUnavailable, "cluster "+name+" not found (route "+rte.Name+")")
		return
	}
	ctx := r.Context()
	if t := rte.Action.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	req := &attemptRequest{downstream: r, route: rte, arm: arm, cluster: cl, ctx: ctx}
	res := h.attempt(req)
	if res.err != nil {
		h.upstreamError(w, r, cl, res.addr, res.err, ctx)
		return
	}
	h.writeResponse(w, res, rte, arm)
}

// writeResponse copies an upstream answer to the client with the route's
// response header edits.
func (h *Handler) writeResponse(w http.ResponseWriter, res *attemptResult, rte *router.Route, arm *router.WeightedCluster) {
	resp := res.resp
	defer resp.Body.Close()
	hdr := w.Header()
	copyResponseHeaders(hdr, resp.Header)
	hdr.Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(res.took.Milliseconds(), 10))
	rte.RespOps.Apply(hdr)
	if arm != nil {
		arm.RespOps.Apply(hdr)
	}
	announceTrailers(hdr, resp.Trailer)
	w.WriteHeader(resp.StatusCode)
	copyBody(w, resp)
	writeTrailers(hdr, resp.Trailer)
}

// upstreamError answers for a request that got no response. The body names
// the cluster, the host and the cause, instead of Envoy's opaque
// "upstream connect error or disconnect/reset before headers".
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, cl *upstream.Cluster, addr string, err error, ctx context.Context) {
	switch {
	case r.Context().Err() != nil:
		// The client went away (Envoy's DC); nobody reads an answer.
		w.WriteHeader(499)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		cl.Stats.RqTimeout.Add(1)
		localReply(w, http.StatusGatewayTimeout, "upstream request timeout: cluster "+cl.Name+" host "+addr)
	case errors.Is(err, errNoHost):
		localReply(w, http.StatusServiceUnavailable, "no healthy upstream: cluster "+cl.Name+" has no endpoints")
	case isConnectError(err):
		cl.Stats.CxConnectFail.Add(1)
		localReply(w, http.StatusServiceUnavailable, "upstream connect error: cluster "+cl.Name+" host "+addr+": "+rootCause(err))
	default:
		localReply(w, http.StatusServiceUnavailable, "upstream reset before response: cluster "+cl.Name+" host "+addr+": "+rootCause(err))
	}
}

// localReply is an answer the proxy makes itself: a one-line plain-text body.
func localReply(w http.ResponseWriter, code int, reason string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain")
	hdr.Set("X-Sluice-Reason", reason)
	w.WriteHeader(code)
	w.Write([]byte(reason + "\n"))
}

// stripPort drops a ":port" suffix from an authority (IPv6 brackets kept).
func stripPort(h string) string {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.IndexByte(h[i:], ']') >= 0 {
		return h
	}
	return h[:i]
}
