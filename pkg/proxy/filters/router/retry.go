package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// DefaultBufferLimit is how much of a request body the proxy keeps so the
// request can be retried or mirrored: Envoy's default per-connection
// buffer limit (1 MiB), which its router also uses per request. A route's
// per_request_buffer_limit_bytes / request_body_buffer_limit overrides it.
// The body is streamed upstream while it is kept (never read ahead, but
// for one of at most SmallBodyLimit, read whole first); a body larger
// than the limit is sent once and never retried or mirrored.
const DefaultBufferLimit = 1 << 20

// failure is why an attempt got no usable response.
type failure uint8

const (
	failNone        failure = iota
	failConnect             // could not connect (UF)
	failReset               // the connection closed or reset before a response (UC)
	failStreamReset         // the HTTP/2 stream was reset (UR)
	failRefused             // HTTP/2 REFUSED_STREAM (UR): the upstream did not process it
	failPerTry              // per-try timeout (UT)
	failTimeout             // route timeout (UT), never retried
	failNoHost              // no healthy host (UH), never retried
	failPolicy              // refused by cluster policy, e.g. a circuit breaker (UO); never retried
	failClient              // the client went away (DC)
)

// flag is the response flag of a failure.
func (f failure) flag() Flags {
	switch f {
	case failConnect:
		return FlagUF
	case failReset:
		return FlagUC
	case failStreamReset, failRefused:
		return FlagUR
	case failPerTry, failTimeout:
		return FlagUT
	case failNoHost:
		return FlagUH
	case failPolicy:
		return FlagUO
	case failClient:
		return FlagDC
	}
	return 0
}

// classify says why an attempt failed. The order matters: the client
// leaving and the route timeout explain a cancelled attempt before the
// per-try timeout does.
func classify(err error, down, route context.Context, perTryFired bool) (failure, Flags) {
	var pf *upstreamFailure
	switch {
	case down.Err() != nil:
		return failClient, FlagDC
	case route.Err() != nil:
		return failTimeout, FlagUT
	case perTryFired:
		return failPerTry, FlagUT
	case errors.Is(err, errNoHost):
		return failNoHost, FlagUH
	case errors.As(err, &pf):
		return failPolicy, pf.flag
	case errors.Is(err, upstream.ErrOverflow):
		return failPolicy, FlagUO
	case isConnectError(err):
		return failConnect, FlagUF
	case isRefusedStream(err):
		return failRefused, FlagUR
	case isStreamReset(err):
		return failStreamReset, FlagUR
	}
	return failReset, FlagUC
}

func isRefusedStream(err error) bool { return strings.Contains(err.Error(), "REFUSED_STREAM") }

// isStreamReset recognises an HTTP/2 RST_STREAM from the upstream (the
// bundled HTTP/2 transport's StreamError is not exported).
func isStreamReset(err error) bool { return strings.Contains(err.Error(), "stream error") }

// retriableFailure reports whether a failed attempt is retried under the
// policy, by Envoy's wouldRetryFromReset: reset, 5xx and gateway-error
// retry any reset; connect-failure and reset-before-request retry failed
// connections (nothing was sent); refused-stream retries refused streams.
// A per-try timeout is a local reset, retried by reset, 5xx and
// gateway-error.
func retriableFailure(on RetryOn, f failure) bool {
	anyReset := on&(RetryReset|Retry5xx|RetryGatewayError) != 0
	switch f {
	case failConnect:
		return anyReset || on&(RetryConnectFailure|RetryResetBeforeRequest) != 0
	case failRefused:
		return anyReset || on&RetryRefusedStream != 0
	case failReset, failStreamReset, failPerTry:
		return anyReset
	}
	return false
}

// backoff is Envoy's fully jittered exponential back-off
// (JitteredExponentialBackOffStrategy): before the n-th retry (n >= 1) it
// waits a uniformly random time in [0, min(base*2^(n-1), max)).
func backoff(n int, base, maxInterval time.Duration, random uint64) time.Duration {
	ceil := base
	for i := 1; i < n && ceil < maxInterval; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxInterval)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(random % uint64(ceil))
}

// hasBody reports whether r carries a request body.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && (r.ContentLength != 0 || len(r.TransferEncoding) > 0)
}

// attemptCountValues are shared header values for x-envoy-attempt-count.
var attemptCountValues = func() [][]string {
	v := make([][]string, 16)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

func attemptCountValue(n int) []string {
	if n < len(attemptCountValues) {
		return attemptCountValues[n]
	}
	return []string{strconv.Itoa(n)}
}

// msValues are shared header values for the milliseconds most answers
// take (x-envoy-upstream-service-time).
var msValues = func() [][]string {
	v := make([][]string, 100)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

// msValue is the header value of n milliseconds; shared values have
// len == cap, so an append copies them.
func msValue(n int64) []string {
	if n >= 0 && n < int64(len(msValues)) {
		return msValues[n]
	}
	return []string{strconv.FormatInt(n, 10)}
}

// perTry arms a per-try timeout that applies until the response headers
// arrive, as Envoy's does: it cancels the attempt only if it fires first,
// so a response that started in time may stream for as long as the route
// timeout allows. It is the attempt's context: once the timeout has
// fired, its Err is context.DeadlineExceeded (a timeout, for outlier
// detection and error text), not the plain cancellation used to stop the
// attempt. (One allocation serves as both.)
type perTry struct {
	context.Context
	state  atomic.Int32 // 0 armed, 1 headers arrived, 2 fired
	cancel context.CancelFunc
	timer  *time.Timer
}

func (pt *perTry) Err() error {
	err := pt.Context.Err()
	if err == context.Canceled && pt.state.Load() == 2 {
		return context.DeadlineExceeded
	}
	return err
}

func startPerTry(parent context.Context, d time.Duration) (context.Context, *perTry) {
	ctx, cancel := context.WithCancel(parent)
	pt := &perTry{Context: ctx, cancel: cancel}
	pt.timer = time.AfterFunc(d, pt.fire)
	return pt, pt
}

// fire is the timer's: it cancels the attempt unless its headers came.
func (pt *perTry) fire() {
	if pt.state.CompareAndSwap(0, 2) {
		pt.cancel()
	}
}

// headers disarms the timer; it reports false if the timeout won.
func (pt *perTry) headers() bool {
	pt.timer.Stop()
	return pt.state.CompareAndSwap(0, 1) || pt.state.Load() == 1
}

// tryResult is the chosen attempt: its result, what failed (failNone for a
// response), and the function that ends the attempt's context once its
// response body has been copied.
type tryResult struct {
	attemptResult
	fail failure
	done func()
}

func noop() {}

// send runs a forwarding route's attempts: the first, then retries as the
// route's retry policy allows, each bounded by the per-try timeout, all
// within ctx (the route timeout). It returns the attempt whose outcome the
// client gets. Retries never go beyond the route timeout: back-off waits
// end with it, and then the route timeout is the answer.
func send(ctx context.Context, r *http.Request, rte *routes.Route, cfg *Config, arm *ArmOps,
	cl *upstream.Cluster, body reqBody, info *RequestInfo, origDst string) tryResult {
	pol := cfg.Retry
	if pol != nil && (pol.NumRetries == 0 || !pol.AppliesTo(r)) {
		pol = nil
	}
	var retriesLeft uint32
	if pol != nil {
		retriesLeft = pol.NumRetries
	}
	retried := false // a retry is in flight (holds a retry slot)
	var tried []*upstream.Host
	req := attemptRequest{route: rte, cfg: cfg, arm: arm, cluster: cl, decorate: info.EgressTracing, upgrade: info.Upgrade, origDst: origDst}
	for {
		info.Attempts++
		// Each attempt reads the body through its own reader; the request
		// itself is not copied for it (outboundRequest makes the copy).
		req.body = body.reader()
		if cfg.AttemptCount {
			r.Header["X-Envoy-Attempt-Count"] = attemptCountValue(info.Attempts)
		}
		tryCtx, pt := ctx, (*perTry)(nil)
		if pol != nil && pol.PerTryTimeout > 0 {
			tryCtx, pt = startPerTry(ctx, pol.PerTryTimeout)
		}
		req.downstream, req.ctx = r, tryCtx
		if pol != nil && len(tried) > 0 {
			avoidHosts(&req, pol, cl, tried)
		}
		res := attempt(&req)
		fired := pt != nil && !pt.headers()
		info.UpstreamLocal = res.local
		info.UpstreamLocalPrincipal, info.UpstreamPeerPrincipal = res.principals.Local, res.principals.Peer
		if res.host != nil {
			info.Upstream = res.host.Address
			if pol != nil && (pol.PreviousHosts || pol.PriorityUpdateFrequency > 0) {
				tried = append(tried, res.host)
			}
		} else if res.addr != "" {
			info.Upstream = res.addr
		}
		done := noop
		if pt != nil {
			done = pt.cancel
		}
		var fail failure
		var flag Flags
		would := false
		if res.err == nil && (fired || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
			// A timeout (per try, or the route's) won the race with the
			// response headers: Envoy's timer answers 504 UT, whatever
			// the upstream sends after it (here possibly the answer to
			// the cancellation itself).
			res.resp.Body.Close()
			res.resp, res.err = nil, context.DeadlineExceeded
		}
		if res.err != nil {
			fail, flag = classify(res.err, r.Context(), ctx, fired)
			if fail == failConnect {
				cl.Stats.CxConnectFail.Add(1) // per failed attempt, as Envoy counts connections
			}
			if fail == failPerTry {
				cl.Stats.RqPerTryTimeout.Add(1)
			}
			would = pol != nil && retriableFailure(pol.On, fail)
		} else if pol != nil {
			would = pol.RetriableResponse(res.resp.StatusCode, res.resp.Header)
		}
		// Envoy's shouldRetry: a retry in flight that ends in anything not
		// retriable counted as a success; its slot is released either way.
		if retried {
			cl.ReleaseRetry()
			retried = false
			if !would {
				cl.Stats.RqRetrySuccess.Add(1)
			}
		}
		final := !would
		switch {
		case final:
		case retriesLeft == 0:
			cl.Stats.RqRetryLimitExceeded.Add(1)
			info.Flags |= FlagURX
			final = true
		case !body.replayable():
			final = true // the body was larger than the buffer: it cannot be sent again
		default:
			retriesLeft--
			if !cl.TryRetry() {
				info.Flags |= FlagUO
				final = true
			}
		}
		if final {
			info.Flags |= flag
			return tryResult{attemptResult: res, fail: fail, done: done}
		}
		retried = true
		// Abandon this attempt: its answer is not the one the client gets.
		// Closing without reading resets the stream (HTTP/1.1: the
		// connection), as Envoy resets the upstream request; reading could
		// wait on an upstream that stalls its body.
		if res.resp != nil {
			res.resp.Body.Close()
		}
		done()
		wait := backoff(info.Attempts, pol.BaseInterval, pol.MaxInterval, rand.Uint64())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			cl.ReleaseRetry()
			fail, flag = classify(ctx.Err(), r.Context(), ctx, false)
			info.Flags |= flag
			return tryResult{attemptResult: attemptResult{err: ctx.Err(), host: res.host, addr: res.addr}, fail: fail, done: noop}
		}
	}
}

// drainAndClose reads a little of a shadow response so its connection can
// be reused, then closes it. (Only for mirrors, whose context bounds it.)
func drainAndClose(rc io.ReadCloser) {
	io.CopyN(io.Discard, rc, 32<<10)
	rc.Close()
}

// avoidHosts tells host selection what a retry should not go to again:
// the hosts tried (previous_hosts, honoured by re-picking up to
// host_selection_retry_max_attempts), and, with previous_priorities
// (Istio's retryRemoteLocalities), the priority levels of the hosts tried
// in the attempts counted so far (every update_frequency attempts): the
// pick works the priority load out as if those levels had no healthy
// hosts, so the retry moves to the next level even while the tried one is
// healthy. When that would exclude every level the load is left as it is.
func avoidHosts(req *attemptRequest, pol *RetryPolicy, cl *upstream.Cluster, tried []*upstream.Host) {
	var avoid []*upstream.Host
	if pol.PreviousHosts {
		avoid = append(avoid, tried...)
	}
	if f := pol.PriorityUpdateFrequency; f > 0 && len(tried) >= f {
		// Envoy's previous_priorities: every f attempts, the levels of the
		// hosts tried so far are excluded from the priority load.
		counted := tried[:len(tried)/f*f]
		var mask uint64
		for i, host := range cl.Hosts {
			for _, t := range counted {
				if t == host {
					if p := cl.PriorityOf(i); p < 64 {
						mask |= 1 << p
					}
					break
				}
			}
		}
		req.excludePriorities = mask
	}
	setAvoid(req, avoid, pol.HostSelectionMaxAttempts)
}
