package httpproxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// attemptRequest is one try at sending a request upstream.
type attemptRequest struct {
	downstream *http.Request
	route      *router.Route
	arm        *router.WeightedCluster
	cluster    *upstream.Cluster
	// ctx bounds the attempt (the route timeout, the client's lifetime).
	ctx context.Context
}

// attemptResult is what one attempt got: a response, or an error and the
// address it was for.
type attemptResult struct {
	resp *http.Response
	err  error
	host *upstream.Host
	addr string
	took time.Duration
}

var errNoHost = errors.New("no healthy upstream")

// attempt picks a host of the cluster and sends the request to it. Host
// state (in-flight count, totals, failures) is updated here, the one place
// every request to a host passes.
func (h *Handler) attempt(a *attemptRequest) *attemptResult {
	cl, r := a.cluster, a.downstream
	res := &attemptResult{}
	if cl.Kind == upstream.OriginalDst {
		res.addr = cl.OriginalDestination(r)
		if res.addr == "" {
			res.err = errors.New("request has no destination to pass through to")
			return res
		}
	} else {
		res.host = cl.Pick()
		if res.host == nil {
			cl.Stats.CxNoneHealthy.Add(1)
			res.err = errNoHost
			return res
		}
		res.addr = res.host.Address
	}
	out := outboundRequest(r, res.addr, a.route)
	a.route.ReqOps.Apply(out.Header)
	if a.arm != nil {
		a.arm.ReqOps.Apply(out.Header)
	}
	if t := a.route.Action.Timeout; t > 0 {
		out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(t.Milliseconds(), 10))
	}
	out = out.WithContext(a.ctx)

	cl.Stats.RqTotal.Add(1)
	cl.Stats.RqActive.Add(1)
	if res.host != nil {
		res.host.Active.Add(1)
	}
	start := time.Now()
	res.resp, res.err = cl.Transport.RT.RoundTrip(out)
	res.took = time.Since(start)
	cl.Stats.RqActive.Add(-1)
	if res.host != nil {
		res.host.Active.Add(-1)
		res.host.Requests.Add(1)
	}
	switch {
	case res.err != nil:
		if res.host != nil {
			res.host.Failures.Add(1)
		}
	default:
		cl.Stats.RecordStatus(res.resp.StatusCode)
		if res.host != nil && res.resp.StatusCode >= 500 {
			res.host.Failures.Add(1)
		}
	}
	return res
}
