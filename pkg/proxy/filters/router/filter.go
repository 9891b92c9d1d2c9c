// Package router is Envoy's router filter (envoy.filters.http.router,
// source/common/router/router.cc), always last in a connection manager's
// chain: its per-route config (the route action's timeout, retry policy,
// mirror policies and hash policy, the buffer limit and attempt-count
// headers; policy.go) and what it does with a request: redirects and
// direct responses, or forward (forward.go) with attempts and retries
// (retry.go, attempt.go), mirrors (mirror.go), the upstream request
// (outbound.go) and upgrade tunnels (tunnel.go). Route matching and the
// route table (Envoy's route configuration, read by every filter) are
// pkg/proxy/router.
package router

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// Name is the filter's name, as Envoy registers it.
const Name = "envoy.filters.http.router"

// DefaultTimeout is a route's timeout when it sets none (Envoy's 15 s).
const DefaultTimeout = 15 * time.Second

// Config is the router filter's compiled config for one route.
type Config struct {
	// ReqOps and RespOps are the route's and its virtual host's header
	// edits; Arms the weighted clusters' (by arm, as Action.Weighted).
	ReqOps, RespOps HeaderOps
	Arms            []ArmOps

	// Timeout bounds the whole exchange until the response headers (and
	// the streamed body); 0 means none.
	Timeout time.Duration
	// timeoutValue is Timeout's x-envoy-expected-rq-timeout-ms value,
	// made once by compileConfig (nil: made per request).
	timeoutValue []string
	// Retry is the route's retry policy (nil: one attempt only).
	Retry *RetryPolicy
	// Mirrors are the clusters a copy of the request is shadowed to.
	Mirrors []MirrorPolicy
	// Hash makes the request's hash key for ring hash and maglev
	// clusters (hash_policy; compiled by the upstream package).
	Hash *upstream.HashPolicy
	// AttemptCount sets x-envoy-attempt-count on upstream requests, and
	// AttemptCountInResponse on the response (the virtual host's
	// include_request_attempt_count / include_attempt_count_in_response).
	AttemptCount, AttemptCountInResponse bool
	// BufferLimit is the most request body kept for retries and mirrors
	// (0: DefaultBufferLimit).
	BufferLimit int64
}

// ArmOps are a weighted cluster's header edits.
type ArmOps struct{ ReqOps, RespOps HeaderOps }

var slot = httpfilter.Register(factory{})

type factory struct{}

func (factory) Name() string { return Name }

func (factory) ConfigType() string {
	return string((&routerv3.Router{}).ProtoReflect().Descriptor().FullName())
}

// Terminal: the router ends every chain.
func (factory) Terminal() bool { return true }

// NewFilter accepts the router filter with none of its options: every
// field of envoy.extensions.filters.http.router.v3.Router set is NACKed by
// name.
func (factory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	if cfg != nil {
		var r routerv3.Router
		if err := cfg.UnmarshalTo(&r); err != nil {
			return nil, err
		}
		if bad := xdsfields.Unsupported(&r, nil); len(bad) > 0 {
			return nil, fmt.Errorf("%v: not supported", bad)
		}
	}
	return filter{}, nil
}

// CompilePerRoute compiles the route action's part that is the router's
// (compileConfig). Envoy's router takes no typed_per_filter_config; one
// given is rejected, not ignored.
func (factory) CompilePerRoute(in *httpfilter.PerRouteInput) (any, error) {
	if in.Route.TypedPerFilterConfig[Name] != nil || in.VirtualHost.TypedPerFilterConfig[Name] != nil {
		return nil, fmt.Errorf("typed_per_filter_config for %q is not supported", Name)
	}
	c, err := compileConfig(in.Route, in.VirtualHost)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (factory) NewProxyStats() httpfilter.Stats { return &ProxyStats{} }

// ProxyStats are the router filter's proxy-wide counters (sluice.mirror.*)
// and the shadow requests in flight.
type ProxyStats struct {
	Mirror   MirrorStats
	inFlight atomic.Int64
}

// MirrorStats count shadow requests (sluice.mirror.*).
type MirrorStats struct {
	Sent             atomic.Uint64 // copies sent
	Failed           atomic.Uint64 // copies that got no answer
	DroppedOverflow  atomic.Uint64 // refused by the mirror cluster's circuit breakers
	DroppedBody      atomic.Uint64 // the body was too large or not fully read
	DroppedNoCluster atomic.Uint64 // the mirror cluster does not exist
}

// WriteText writes sluice.mirror.*.
func (s *ProxyStats) WriteText(w io.Writer, _ string) {
	m := &s.Mirror
	fmt.Fprintf(w, "sluice.mirror.dropped_body: %d\n", m.DroppedBody.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_no_cluster: %d\n", m.DroppedNoCluster.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_overflow: %d\n", m.DroppedOverflow.Load())
	fmt.Fprintf(w, "sluice.mirror.failed: %d\n", m.Failed.Load())
	fmt.Fprintf(w, "sluice.mirror.sent: %d\n", m.Sent.Load())
}

// MirrorsInFlight is the number of shadow requests being sent by the
// proxy whose scope this is.
func MirrorsInFlight(sc *httpfilter.Scope) int64 {
	return sc.Filter(slot).(*ProxyStats).inFlight.Load()
}

// PerRoute is the router filter's config compiled for a route, for tests
// and tools reading a compiled route.
func PerRoute(r httpfilter.Route) *Config { c, _ := r.FilterConfig(slot).(*Config); return c }

type filter struct{}

// noConfig is the router config of a route with none.
var noConfig Config

// Decode is the router: the route's action. It always answers.
func (filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	rte := s.Route.(*routes.Route)
	cfg := PerRoute(rte)
	if cfg == nil {
		// A route the route table makes itself (require_tls's redirect)
		// has no per-filter config: nothing of the router's to apply.
		cfg = &noConfig
	}
	switch rte.Action.Kind {
	case routes.Redirect:
		redirect(s, rte, cfg)
	case routes.DirectResponse:
		if s.R.Method == http.MethodConnect && len(rte.Action.Body) == 0 {
			connectRefused(s, rte, cfg) // connect.go
			break
		}
		directResponse(s, rte, cfg)
	default:
		if rte.Action.Connect {
			connect(s, rte, cfg)
			break
		}
		forward(s, rte, cfg)
	}
	return httpfilter.Answered
}
