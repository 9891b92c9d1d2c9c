package router

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// RequestInfo is the request's state (see httpfilter).
type RequestInfo = httpfilter.RequestInfo

// localReply is an answer the proxy makes itself (httpfilter.LocalReply).
// Envoy's response code details for answers the proxy did not make up
// (ResponseCodeDetailValues in envoy/stream_info/stream_info.h).
const (
	DetailsViaUpstream    = "via_upstream"
	DetailsDirectResponse = "direct_response"
)

func localReply(w http.ResponseWriter, info *RequestInfo, code int, flag httpfilter.Flags, reason string) {
	httpfilter.LocalReply(w, info, code, flag, reason, reason)
}

// stripDecorator removes x-envoy-decorator-operation from an answer on a
// chain with egress tracing, as Envoy's connection manager does last for
// every outbound response (the upstream's, or one the proxy makes).
func stripDecorator(h http.Header, info *RequestInfo) {
	if info.EgressTracing {
		delete(h, routes.DecoratorHeader)
	}
}

// redirect answers with the route's redirect.
func redirect(s *httpfilter.Stream, rte *routes.Route, cfg *Config) {
	w, info := s.W, &s.Info
	w.Header().Set("Location", rte.Location(s.R))
	cfg.RespOps.Apply(w.Header())
	stripDecorator(w.Header(), info)
	info.Status, info.Details = rte.RedirectCode(), DetailsDirectResponse
	w.WriteHeader(info.Status)
}

// directResponse answers with the route's direct response.
func directResponse(s *httpfilter.Stream, rte *routes.Route, cfg *Config) {
	w, info := s.W, &s.Info
	cfg.RespOps.Apply(w.Header())
	stripDecorator(w.Header(), info)
	if len(rte.Action.Body) > 0 {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/plain")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(rte.Action.Body)))
	}
	info.Status, info.Details = rte.Action.Status, DetailsDirectResponse
	w.WriteHeader(rte.Action.Status)
	w.Write(rte.Action.Body)
}

// forward runs a forwarding route: pick the cluster, start the route
// timeout, send the attempts the retry policy allows (the filters before
// the router have run), write the answer, and mirror. Cluster policy
// (limits, picking, outlier records) lives in the attempt.
func forward(s *httpfilter.Stream, rte *routes.Route, cfg *Config) {
	w, r, info := s.W, s.R, &s.Info
	name, i := rte.Action.PickCluster()
	var arm *ArmOps
	if i >= 0 {
		arm = &cfg.Arms[i]
	}
	info.Cluster = name
	cl := s.Clusters[name]
	if cl == nil {
		status := http.StatusServiceUnavailable
		if c := rte.Action.ClusterNotFoundStatus; c != 0 {
			status = c // the route's cluster_not_found_response_code
		}
		reason := "cluster " + name + " not found (route " + rte.Name + ")"
		if ln, ok := s.Internal[name]; ok {
			reason = "cluster " + name + " sends to internal listener " + ln + ", which takes CONNECT tunnels only (route " + rte.Name + ")"
		}
		localReply(w, info, status, httpfilter.FlagNC, reason)
		return
	}
	mirrors := len(cfg.Mirrors) > 0
	body, ok := readSmallBody(r, cfg.BufferLimit, mirrors)
	if !ok {
		// The client left (or ended its side with less than its
		// Content-Length) before its request was complete: the stream is
		// reset with no response (DC), as Envoy's; returning would let
		// net/http answer an empty 200.
		info.Flags |= httpfilter.FlagDC
		info.Details = "downstream_remote_disconnect"
		panic(http.ErrAbortHandler)
	}
	// The route timeout runs from the end of the downstream request, as
	// Envoy's (RouteAction.timeout).
	ctx := r.Context()
	if t := cfg.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	switch {
	case body.whole != nil: // read whole for the mirrors
		mirror(s, rte, cfg, body.whole, true)
	case body.replay != nil: // a small body read whole, no mirrors
	case hasBody(r) && (mirrors || cfg.Retry != nil):
		limit := cfg.BufferLimit
		if limit <= 0 {
			limit = DefaultBufferLimit
		}
		body.replay = newReplayBody(r.Body, limit, r.ContentLength)
	case mirrors:
		mirror(s, rte, cfg, nil, true) // no body: the copies go out with the primary
	}
	if body.replay != nil && !mirrors {
		// A mirrored body goes on to the mirrors' goroutines, so only
		// one that was not is given back.
		defer body.replay.release()
	}
	origDst := ""
	if cl.Kind == upstream.OriginalDst && s.Conn != nil && s.Conn.OriginalDst {
		origDst = s.Conn.LocalAddr.String()
	}
	res := send(ctx, r, rte, cfg, arm, cl, body, info, origDst)
	defer res.done()
	switch {
	case res.err != nil:
		upstreamError(w, info, cl, res)
	case info.Upgrade != "" && res.resp.StatusCode == http.StatusSwitchingProtocols:
		tunnel(w, ctx, &res.attemptResult, cfg, info)
	default:
		writeResponse(w, r, ctx, &res.attemptResult, rte, cfg, arm, info)
	}
	if body.replay != nil && mirrors {
		whole, ok := body.replay.complete()
		mirror(s, rte, cfg, whole, ok)
	}
}

// writeResponse copies an upstream answer to the client with the route's
// response header edits. A stream cut short while the body is copied is
// recorded (UT for the route timeout, DC for the client, else UR) before
// the abort goes on.
func writeResponse(w http.ResponseWriter, r *http.Request, ctx context.Context, res *attemptResult,
	rte *routes.Route, cfg *Config, arm *ArmOps, info *RequestInfo) {
	resp := res.resp
	defer resp.Body.Close()
	hdr := w.Header()
	copyResponseHeaders(hdr, resp.Header)
	if info.TakeUpstreamPeer {
		// Istio's metadata exchange: the server sidecar named itself in
		// the answer; the client sidecar reads and strips it.
		info.PeerMetadata = istiometrics.TakePeer(hdr)
	}
	hdr["X-Envoy-Upstream-Service-Time"] = msValue(res.took.Milliseconds())
	if cfg.AttemptCountInResponse {
		hdr["X-Envoy-Attempt-Count"] = attemptCountValue(info.Attempts)
	}
	if info.Flags != 0 {
		hdr[httpfilter.ResponseFlagsHeader] = []string{info.Flags.String()}
	}
	cfg.RespOps.Apply(hdr)
	if arm != nil {
		arm.RespOps.Apply(hdr)
	}
	stripDecorator(hdr, info)
	announceTrailers(hdr, resp.Trailer)
	info.Status, info.Details = resp.StatusCode, DetailsViaUpstream
	w.WriteHeader(resp.StatusCode)
	defer func() {
		if p := recover(); p != nil {
			switch {
			case r.Context().Err() != nil:
				info.Flags |= httpfilter.FlagDC
			case ctx.Err() != nil:
				info.Flags |= httpfilter.FlagUT
			default:
				info.Flags |= httpfilter.FlagUR
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
func upstreamError(w http.ResponseWriter, info *RequestInfo, cl *upstream.Cluster, res tryResult) {
	addr := res.addr
	tries := ""
	if info.Attempts > 1 {
		tries = " (after " + strconv.Itoa(info.Attempts) + " attempts)"
	}
	switch res.fail {
	case failClient:
		// The client went away (Envoy's DC); nobody reads an answer.
		info.Status, info.Details = 499, "client disconnected before the response"
		w.WriteHeader(499)
	case failTimeout:
		cl.Stats.RqTimeout.Add(1)
		localReply(w, info, http.StatusGatewayTimeout, 0, "upstream request timeout: cluster "+cl.Name+" host "+addr+tries)
	case failPerTry:
		localReply(w, info, http.StatusGatewayTimeout, 0, "upstream per-try timeout: cluster "+cl.Name+" host "+addr+tries)
	case failNoHost:
		localReply(w, info, http.StatusServiceUnavailable, 0, "no healthy upstream: cluster "+cl.Name+" has no endpoints"+tries)
	case failPolicy:
		w.Header().Set("X-Envoy-Overloaded", "true")
		localReply(w, info, http.StatusServiceUnavailable, 0, "upstream overflow: cluster "+cl.Name+": "+res.err.Error()+tries)
	case failConnect:
		localReply(w, info, http.StatusServiceUnavailable, 0, "upstream connect error: cluster "+cl.Name+" host "+addr+": "+rootCause(res.err)+tries)
	default:
		localReply(w, info, http.StatusServiceUnavailable, 0, "upstream reset before response: cluster "+cl.Name+" host "+addr+": "+rootCause(res.err)+tries)
	}
}
