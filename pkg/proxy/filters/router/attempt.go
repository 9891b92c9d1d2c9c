package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// attemptRequest is one try at sending a request upstream.
type attemptRequest struct {
	downstream *http.Request
	// body, when set, is what the upstream request sends instead of the
	// downstream's body (an attempt's view of a kept body, retry.go).
	body    io.ReadCloser
	route   *routes.Route
	cfg     *Config
	arm     *ArmOps
	cluster *upstream.Cluster
	// ctx bounds the attempt (the route timeout, the client's lifetime).
	ctx context.Context
	// avoid lists hosts a retry should not go to again; host selection
	// re-picks up to selectAttempts times to find another (Envoy's retry
	// host predicate with host_selection_retry_max_attempts). Set them
	// with setAvoid.
	avoid          []*upstream.Host
	selectAttempts int
	// excludePriorities are the levels already tried (previous_priorities).
	excludePriorities uint64
	// decorate sends the route's decorator operation upstream (egress
	// tracing).
	decorate bool
	// upgrade is set for an allowed HTTP/1.1 upgrade (upgrade.go).
	upgrade string
	// origDst is the downstream connection's restored original
	// destination (capture), the upstream of ORIGINAL_DST clusters; "".
	origDst string
}

// setAvoid tells the next attempts of req to avoid hosts, re-picking up to
// maxAttempts times (at least once more) to find another.
func setAvoid(req *attemptRequest, hosts []*upstream.Host, maxAttempts int) {
	req.avoid = hosts
	req.selectAttempts = max(maxAttempts, 2)
}

// attemptResult is what one attempt got: a response, or an error and the
// address it was for. The response body releases the attempt's hold on
// the host and the cluster's circuit breakers when it is closed (or read
// to the end), so a request counts as active until its body is done.
type attemptResult struct {
	resp *http.Response
	err  error
	host *upstream.Host
	addr string
	took time.Duration
	// local is the upstream connection's local address, principals its
	// TLS identities.
	local      netip.AddrPort
	principals upstream.Principals
}

var errNoHost = errors.New("no healthy upstream")

// attempt picks a host of the cluster and sends the request to it. This is
// the one place every request to a host passes, so cluster policy lives
// here: pick (with the route's hash key), circuit breakers, the host's
// counters, and the outcome for outlier detection.
func attempt(a *attemptRequest) attemptResult {
	cl, r := a.cluster, a.downstream
	var res attemptResult
	var setCookie string
	if cl.Kind == upstream.OriginalDst {
		res.addr = cl.OriginalDestination(r, a.origDst)
		if res.addr == "" {
			res.err = errors.New("request has no destination to pass through to")
			return res
		}
	} else {
		in := upstream.PickInput{Avoid: a.avoid, MaxSelectAttempts: a.selectAttempts, ExcludePriorities: a.excludePriorities}
		if cl.UsesHash() {
			if hp := a.cfg.Hash; hp != nil {
				hr := hp.Hash(r)
				in.Hash, in.HasHash, setCookie = hr.Key, hr.OK, hr.SetCookie
			}
		}
		res.host = cl.Pick(&in)
		if res.host == nil {
			cl.Stats.CxNoneHealthy.Add(1)
			res.err = errNoHost
			return res
		}
		res.addr = res.host.Address
	}
	// The request gets its pooled connection (HTTP/1.1) or stream (HTTP/2)
	// here, pending while none has room or one is dialled for it.
	adm, err := cl.Admit(a.ctx, res.host, res.addr, r.ProtoMajor == 2)
	if err != nil {
		if errors.Is(err, upstream.ErrOverflow) {
			res.err = overflowError(err.Error())
			return res
		}
		res.err = err
		if a.ctx.Err() == nil { // a failed dial; a request that gave up waiting says nothing of the host
			recordError(a, cl, res.host, err)
		}
		return res
	}
	// What this function adds to the upstream request's headers, at most.
	extra := len(a.cfg.ReqOps.Edits)
	if a.decorate && a.route.Decorator != nil {
		extra++
	}
	if a.cfg.Timeout > 0 {
		extra++
	}
	if a.arm != nil {
		extra += len(a.arm.ReqOps.Edits)
	}
	if a.upgrade != "" {
		extra += 2
	}
	own := new(attemptOwn)
	// The header map is pooled when the connection is done with it once
	// RoundTrip returns; an upgrade's tunnel keeps its request.
	pooled := a.upgrade == "" && adm.HeaderDoneAtReturn()
	out := outboundRequest(a.ctx, r, a.body, &own.url, res.addr, a.route, extra, pooled)
	if a.upgrade != "" {
		setUpgradeHeaders(out, r)
	}
	// Envoy's connection manager sets the header before the router's
	// header edits, which may still change it. The value is the route's,
	// made when it was compiled.
	if a.decorate && a.route.Decorator != nil {
		out.Header[routes.DecoratorHeader] = a.route.Decorator
	}
	a.cfg.ReqOps.Apply(out.Header)
	if a.arm != nil {
		a.arm.ReqOps.Apply(out.Header)
	}
	if t := a.cfg.Timeout; t > 0 {
		v := a.cfg.timeoutValue // shared, len == cap: an append copies it
		if v == nil {
			v = []string{strconv.FormatInt(t.Milliseconds(), 10)}
		}
		out.Header["X-Envoy-Expected-Rq-Timeout-Ms"] = v
	}

	cl.Stats.RqTotal.Add(1)
	start := time.Now()
	res.resp, res.err = adm.RoundTrip(out)
	res.took = time.Since(start)
	if pooled {
		putOutboundHeader(out.Header)
		out.Header = nil // (res.resp.Request is out)
	}
	res.local, res.principals = adm.LocalAddr(), adm.Principals()
	if res.err != nil {
		finishAttempt(res.host, &adm)
		recordError(a, cl, res.host, res.err)
		return res
	}
	cl.Stats.RecordStatus(res.resp.StatusCode)
	if res.host != nil {
		cl.Record(res.host, upstream.OutcomeResponse, res.resp.StatusCode)
		if res.resp.StatusCode >= 500 {
			res.host.Failures.Add(1)
		}
	}
	if setCookie != "" {
		// Envoy sets the cookie it hashed on when the request had none.
		res.resp.Header.Add("Set-Cookie", setCookie)
	}
	own.body.ReadCloser, own.body.host, own.body.adm = res.resp.Body, res.host, adm
	res.resp.Body = &own.body
	return res
}

// finishAttempt ends an attempt's hold on its host (its in-flight count)
// and on the cluster's circuit breakers.
func finishAttempt(host *upstream.Host, adm *upstream.Admission) {
	if host != nil {
		host.Requests.Add(1)
	}
	adm.Release()
}

// recordError feeds a failed attempt to outlier detection as Envoy's
// router does: a timeout is a local-origin timeout, any other failure to
// get a response (connect failure, reset) a connect failure. A request
// the client abandoned says nothing about the host.
func recordError(a *attemptRequest, cl *upstream.Cluster, host *upstream.Host, err error) {
	if host == nil {
		return
	}
	if a.downstream.Context().Err() != nil {
		return
	}
	host.Failures.Add(1)
	if errors.Is(a.ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		host.Timeouts.Add(1)
		cl.Record(host, upstream.OutcomeTimeout, 0)
		return
	}
	cl.Record(host, upstream.OutcomeConnectFailed, 0)
}

// attemptOwn is what an attempt that reached a host allocates, in one
// allocation: its upstream request's URL and its response body's wrapper.
type attemptOwn struct {
	url  url.URL
	body releasingBody
}

// releasingBody ends the attempt (finishAttempt) once, when the body is
// closed or read to its end, whichever comes first (part of attemptOwn).
type releasingBody struct {
	io.ReadCloser
	host *upstream.Host
	adm  upstream.Admission
	done atomic.Bool
}

func (b *releasingBody) release() {
	if b.done.CompareAndSwap(false, true) {
		finishAttempt(b.host, &b.adm)
	}
}

func (b *releasingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
