package httpproxy

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// The router filter, last in every chain: a forwarding route's cluster,
// timeout, retries (retry.go, attempt.go), mirrors (mirror.go) and the
// answer; redirects and direct responses are answered here too.

// route is the router filter: the route's action.
func (h *Handler) route(w http.ResponseWriter, r *http.Request, rt *dataplane.Runtime, rte *router.Route, info *RequestInfo) {
	switch rte.Action.Kind {
	case router.Redirect:
		w.Header().Set("Location", rte.Location(r))
		rte.RespOps.Apply(w.Header())
		stripDecorator(w.Header(), info)
		info.Status = rte.RedirectCode()
		w.WriteHeader(info.Status)
	case router.DirectResponse:
		if r.Method == http.MethodConnect && len(rte.Action.Body) == 0 {
			h.connectRefused(w, r, rte, info) // connect.go
			return
		}
		rte.RespOps.Apply(w.Header())
		stripDecorator(w.Header(), info)
		if len(rte.Action.Body) > 0 {
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "text/plain")
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(rte.Action.Body)))
		}
		info.Status = rte.Action.Status
		w.WriteHeader(rte.Action.Status)
		w.Write(rte.Action.Body)
	default:
		if rte.Action.Connect {
			h.connect(w, r, rt, rte, info)
			return
		}
		h.forward(w, r, rt, rte, info)
	}
}

// forward runs the route chain for a forwarding route: pick the cluster,
// start the route timeout, send the attempts the retry policy allows (the
// fault was applied before), write the answer, and mirror. Cluster policy
// (limits, picking, outlier records) lives in the attempt.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rt *dataplane.Runtime, rte *router.Route, info *RequestInfo) {
	name, arm := rte.Action.PickCluster()
	info.Cluster = name
	cl := rt.Clusters[name]
	if cl == nil {
		status := http.StatusServiceUnavailable
		if s := rte.Action.ClusterNotFoundStatus; s != 0 {
			status = s // the route's cluster_not_found_response_code
		}
		reason := "cluster " + name + " not found (route " + rte.Name + ")"
		if ln, ok := rt.Internal[name]; ok {
			reason = "cluster " + name + " sends to internal listener " + ln + ", which takes CONNECT tunnels only (route " + rte.Name + ")"
		}
		h.localReply(w, info, status, FlagNC, reason)
		return
	}
	ctx := r.Context()
	if t := rte.Action.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	var body *replayBody
	mirrors := len(rte.Action.Mirrors) > 0
	if hasBody(r) && (mirrors || rte.Action.Retry != nil) {
		limit := rte.BufferLimit
		if limit <= 0 {
			limit = DefaultBufferLimit
		}
		body = newReplayBody(r.Body, limit, r.ContentLength)
	} else if mirrors {
		h.mirror(r, rt, rte, nil, true, info.EgressTracing) // no body: the copies go out with the primary
	}
	res := h.send(ctx, r, rte, arm, cl, body, info)
	defer res.done()
	switch {
	case res.err != nil:
		h.upstreamError(w, r, info, cl, res, ctx)
	case info.Upgrade != "" && res.resp.StatusCode == http.StatusSwitchingProtocols:
		h.tunnel(w, ctx, res.attemptResult, rte, info)
	default:
		h.writeResponse(w, r, ctx, res.attemptResult, rte, arm, info)
	}
	if body != nil && mirrors {
		whole, ok := body.complete()
		h.mirror(r, rt, rte, whole, ok, info.EgressTracing)
	}
}

// writeResponse copies an upstream answer to the client with the route's
// response header edits. A stream cut short while the body is copied is
// recorded (UT for the route timeout, DC for the client, else UR) before
// the abort goes on.
func (h *Handler) writeResponse(w http.ResponseWriter, r *http.Request, ctx context.Context, res *attemptResult,
	rte *router.Route, arm *router.WeightedCluster, info *RequestInfo) {
	resp := res.resp
	defer resp.Body.Close()
	hdr := w.Header()
	copyResponseHeaders(hdr, resp.Header)
	hdr.Set("X-Envoy-Upstream-Service-Time", strconv.FormatInt(res.took.Milliseconds(), 10))
	if rte.AttemptCountInResponse {
		hdr["X-Envoy-Attempt-Count"] = attemptCountValue(info.Attempts)
	}
	if info.Flags != 0 {
		hdr[ResponseFlagsHeader] = []string{info.Flags.String()}
	}
	rte.RespOps.Apply(hdr)
	if arm != nil {
		arm.RespOps.Apply(hdr)
	}
	stripDecorator(hdr, info)
	announceTrailers(hdr, resp.Trailer)
	info.Status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	defer func() {
		if p := recover(); p != nil {
			switch {
			case r.Context().Err() != nil:
				info.Flags |= FlagDC
			case ctx.Err() != nil:
				info.Flags |= FlagUT
			default:
				info.Flags |= FlagUR
			}
			panic(p)
		}
	}()
	copyBody(w, resp)
	writeTrailers(hdr, resp.Trailer)
}

// upstreamError answers for a request that got no response. The body names
// the cluster, the host and the cause, instead of Envoy's opaque
// "upstream connect error or disconnect/reset before headers"; the
// response flags travel in X-Sluice-Response-Flags.
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, info *RequestInfo, cl *upstream.Cluster, res tryResult, ctx context.Context) {
	addr := res.addr
	tries := ""
	if info.Attempts > 1 {
		tries = " (after " + strconv.Itoa(info.Attempts) + " attempts)"
	}
	switch res.fail {
	case failClient:
		// The client went away (Envoy's DC); nobody reads an answer.
		info.Status = 499
		w.WriteHeader(499)
	case failTimeout:
		cl.Stats.RqTimeout.Add(1)
		h.localReply(w, info, http.StatusGatewayTimeout, 0, "upstream request timeout: cluster "+cl.Name+" host "+addr+tries)
	case failPerTry:
		h.localReply(w, info, http.StatusGatewayTimeout, 0, "upstream per-try timeout: cluster "+cl.Name+" host "+addr+tries)
	case failNoHost:
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "no healthy upstream: cluster "+cl.Name+" has no endpoints"+tries)
	case failPolicy:
		w.Header().Set("X-Envoy-Overloaded", "true")
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "upstream overflow: cluster "+cl.Name+": "+res.err.Error()+tries)
	case failConnect:
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "upstream connect error: cluster "+cl.Name+" host "+addr+": "+rootCause(res.err)+tries)
	default:
		h.localReply(w, info, http.StatusServiceUnavailable, 0, "upstream reset before response: cluster "+cl.Name+" host "+addr+": "+rootCause(res.err)+tries)
	}
}
