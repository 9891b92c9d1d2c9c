package router

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// Extension names the router understands, as Envoy registers them.
const (
	previousHostsPredicateName = "envoy.retry_host_predicates.previous_hosts"
	previousPrioritiesName     = "envoy.retry_priorities.previous_priorities"
)

// Envoy's retry back-off defaults: base 25 ms (runtime
// upstream.base_retry_backoff_ms), max 10 times the base.
const (
	DefaultRetryBaseInterval = 25 * time.Millisecond
	maxIntervalFactor        = 10
)

// RetryOn is a set of Envoy retry conditions (retry_on).
type RetryOn uint32

// Retry conditions, named as in Envoy's retry_on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryResetBeforeRequest
	RetryConnectFailure
	RetryRefusedStream
	RetryRetriable4xx
	RetryRetriableStatusCodes
	RetryRetriableHeaders
	RetryEnvoyRateLimited
	RetryHTTP3PostConnectFailure
	RetryGrpcCancelled
	RetryGrpcDeadlineExceeded
	RetryGrpcInternal
	RetryGrpcResourceExhausted
	RetryGrpcUnavailable

	// RetryGrpcAny is every gRPC condition.
	RetryGrpcAny = RetryGrpcCancelled | RetryGrpcDeadlineExceeded | RetryGrpcInternal | RetryGrpcResourceExhausted | RetryGrpcUnavailable
)

var retryOnNames = map[string]RetryOn{
	"5xx":                        Retry5xx,
	"gateway-error":              RetryGatewayError,
	"reset":                      RetryReset,
	"reset-before-request":       RetryResetBeforeRequest,
	"connect-failure":            RetryConnectFailure,
	"refused-stream":             RetryRefusedStream,
	"retriable-4xx":              RetryRetriable4xx,
	"retriable-status-codes":     RetryRetriableStatusCodes,
	"retriable-headers":          RetryRetriableHeaders,
	"envoy-ratelimited":          RetryEnvoyRateLimited,
	"http3-post-connect-failure": RetryHTTP3PostConnectFailure, // sluice never speaks HTTP/3: never true
	"cancelled":                  RetryGrpcCancelled,
	"deadline-exceeded":          RetryGrpcDeadlineExceeded,
	"internal":                   RetryGrpcInternal,
	"resource-exhausted":         RetryGrpcResourceExhausted,
	"unavailable":                RetryGrpcUnavailable,
}

// ParseRetryOn parses Envoy's comma-separated retry_on (HTTP and gRPC
// conditions together, as a route's retry_policy takes them).
func ParseRetryOn(s string) (RetryOn, error) {
	var on RetryOn
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, ok := retryOnNames[part]
		if !ok {
			return 0, fmt.Errorf("retry_on %q is not a retry condition", part)
		}
		on |= c
	}
	return on, nil
}

// String lists the conditions in Envoy's spelling.
func (on RetryOn) String() string {
	var names []string
	for n, c := range retryOnNames {
		if on&c != 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// RetryPolicy is a compiled Envoy retry_policy.
type RetryPolicy struct {
	On         RetryOn
	NumRetries uint32
	// PerTryTimeout bounds each attempt until its response headers; 0
	// means only the route timeout applies.
	PerTryTimeout time.Duration
	// BaseInterval and MaxInterval shape the fully jittered exponential
	// back-off between attempts.
	BaseInterval, MaxInterval time.Duration
	StatusCodes               []int
	// PreviousHosts (the previous_hosts predicate) asks host selection
	// for a host not tried yet, re-picking up to HostSelectionMaxAttempts
	// times.
	PreviousHosts bool
	// PriorityUpdateFrequency > 0 is previous_priorities (Istio's
	// retryRemoteLocalities): every that many attempts, the priority
	// levels (with locality load balancing: the localities by proximity)
	// tried so far are avoided.
	PriorityUpdateFrequency  int
	HostSelectionMaxAttempts int

	retriableHeaders []routes.HeaderMatcher
	requestHeaders   []routes.HeaderMatcher
}

// AppliesTo reports whether r may be retried at all: when
// retriable_request_headers are set, one must match.
func (p *RetryPolicy) AppliesTo(r *http.Request) bool {
	if len(p.requestHeaders) == 0 {
		return true
	}
	for i := range p.requestHeaders {
		if p.requestHeaders[i].MatchRequest(r) {
			return true
		}
	}
	return false
}

// RetriableResponse reports whether an upstream answer with this status
// and these headers is retried, by Envoy's rules (wouldRetryFromHeaders).
func (p *RetryPolicy) RetriableResponse(status int, h http.Header) bool {
	if _, ok := h["X-Envoy-Ratelimited"]; ok {
		return p.On&RetryEnvoyRateLimited != 0
	}
	on := p.On
	switch {
	case on&Retry5xx != 0 && status >= 500 && status <= 599:
		return true
	case on&RetryGatewayError != 0 && (status == 502 || status == 503 || status == 504):
		return true
	case on&RetryRetriable4xx != 0 && status == http.StatusConflict:
		return true
	}
	if on&RetryRetriableStatusCodes != 0 {
		for _, c := range p.StatusCodes {
			if c == status {
				return true
			}
		}
	}
	if on&RetryRetriableHeaders != 0 {
		for i := range p.retriableHeaders {
			if p.retriableHeaders[i].MatchResponse(status, h) {
				return true
			}
		}
	}
	if on&RetryGrpcAny != 0 {
		if vs := h["Grpc-Status"]; len(vs) > 0 {
			switch vs[0] {
			case "1":
				return on&RetryGrpcCancelled != 0
			case "4":
				return on&RetryGrpcDeadlineExceeded != 0
			case "8":
				return on&RetryGrpcResourceExhausted != 0
			case "13":
				return on&RetryGrpcInternal != 0
			case "14":
				return on&RetryGrpcUnavailable != 0
			}
		}
	}
	return false
}

func compileRetryPolicy(rp *route.RetryPolicy) (*RetryPolicy, error) {
	on, err := ParseRetryOn(rp.RetryOn)
	if err != nil {
		return nil, err
	}
	p := &RetryPolicy{On: on, NumRetries: 1, HostSelectionMaxAttempts: 1, BaseInterval: DefaultRetryBaseInterval}
	if rp.NumRetries != nil {
		p.NumRetries = rp.NumRetries.Value
	}
	p.PerTryTimeout = rp.GetPerTryTimeout().AsDuration()
	if rp.GetPerTryIdleTimeout().AsDuration() > 0 {
		return nil, fmt.Errorf("per_try_idle_timeout is not supported")
	}
	if n := rp.HostSelectionRetryMaxAttempts; n > 0 {
		p.HostSelectionMaxAttempts = int(min(n, 100))
	}
	for _, c := range rp.RetriableStatusCodes {
		p.StatusCodes = append(p.StatusCodes, int(c))
	}
	if bo := rp.RetryBackOff; bo != nil {
		p.BaseInterval = bo.GetBaseInterval().AsDuration()
		if p.BaseInterval <= 0 {
			return nil, fmt.Errorf("retry_back_off: base_interval must be positive")
		}
		if bo.MaxInterval != nil {
			p.MaxInterval = bo.MaxInterval.AsDuration()
			if p.MaxInterval < p.BaseInterval {
				return nil, fmt.Errorf("retry_back_off: max_interval %v is less than base_interval %v", p.MaxInterval, p.BaseInterval)
			}
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = p.BaseInterval * maxIntervalFactor
	}
	for _, hp := range rp.RetryHostPredicate {
		if hp.Name != previousHostsPredicateName {
			return nil, fmt.Errorf("retry_host_predicate %q is not supported (only %s)", hp.Name, previousHostsPredicateName)
		}
		if tc := hp.GetTypedConfig(); tc != nil {
			if err := tc.UnmarshalTo(&previoushosts.PreviousHostsPredicate{}); err != nil {
				return nil, fmt.Errorf("retry_host_predicate %s: %w", hp.Name, err)
			}
		}
		p.PreviousHosts = true
	}
	if pr := rp.RetryPriority; pr != nil {
		if pr.Name != previousPrioritiesName {
			return nil, fmt.Errorf("retry_priority %q is not supported (only %s)", pr.Name, previousPrioritiesName)
		}
		var cfg previouspriorities.PreviousPrioritiesConfig
		if tc := pr.GetTypedConfig(); tc != nil {
			if err := tc.UnmarshalTo(&cfg); err != nil {
				return nil, fmt.Errorf("retry_priority %s: %w", pr.Name, err)
			}
		}
		if cfg.UpdateFrequency <= 0 {
			return nil, fmt.Errorf("retry_priority %s: update_frequency must be positive", pr.Name)
		}
		p.PriorityUpdateFrequency = int(cfg.UpdateFrequency)
	}
	if rp.RateLimitedRetryBackOff != nil || len(rp.RetryOptionsPredicates) > 0 {
		return nil, fmt.Errorf("rate_limited_retry_back_off and retry_options_predicates are not supported")
	}
	for _, h := range rp.RetriableHeaders {
		hm, err := routes.CompileHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("retriable_headers: %w", err)
		}
		p.retriableHeaders = append(p.retriableHeaders, hm)
	}
	for _, h := range rp.RetriableRequestHeaders {
		hm, err := routes.CompileHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("retriable_request_headers: %w", err)
		}
		p.requestHeaders = append(p.requestHeaders, hm)
	}
	return p, nil
}

// Fraction is an Envoy FractionalPercent (see httpfilter).
type Fraction = httpfilter.Fraction

// Always is 100%.
var Always = httpfilter.Always

func compileFraction(f *typev3.FractionalPercent) Fraction { return httpfilter.CompileFraction(f) }

// MirrorPolicy is a compiled request_mirror_policy.
type MirrorPolicy struct {
	Cluster  string
	Fraction Fraction
	// KeepHost is disable_shadow_host_suffix_append.
	KeepHost bool
}

func compileMirror(m *route.RouteAction_RequestMirrorPolicy) (MirrorPolicy, error) {
	if m.ClusterHeader != "" || m.Cluster == "" {
		return MirrorPolicy{}, fmt.Errorf("request_mirror_policies: a cluster name is required (cluster_header is not supported)")
	}
	if len(m.RequestHeadersMutations) > 0 || m.HostRewriteLiteral != "" {
		return MirrorPolicy{}, fmt.Errorf("request_mirror_policies: request_headers_mutations and host_rewrite_literal are not supported")
	}
	mp := MirrorPolicy{Cluster: m.Cluster, Fraction: Always, KeepHost: m.DisableShadowHostSuffixAppend}
	if rf := m.RuntimeFraction; rf != nil {
		mp.Fraction = compileFraction(rf.DefaultValue)
	}
	return mp, nil
}

// compileConfig compiles the router filter's config for a route: the
// route action's timeout (Envoy's default 15 s), hash policy, retry policy
// (the route's, else the virtual host's), mirrors (the route's, else the
// virtual host's), the request buffer limit and the attempt-count headers.
// What it cannot honour is an error. Every route has one: redirects and
// direct responses take only the header edits.
func compileConfig(r *route.Route, vh *route.VirtualHost) (*Config, error) {
	if vh.RetryPolicyTypedConfig != nil || vh.HedgePolicy != nil || vh.IncludeIsTimeoutRetryHeader {
		return nil, fmt.Errorf("virtual host: retry_policy_typed_config, hedge_policy and include_is_timeout_retry_header are not supported")
	}
	c := &Config{}
	var err error
	if c.ReqOps, err = compileHeaderOps(vh.RequestHeadersToAdd, vh.RequestHeadersToRemove, r.RequestHeadersToAdd, r.RequestHeadersToRemove); err != nil {
		return nil, err
	}
	if c.RespOps, err = compileHeaderOps(vh.ResponseHeadersToAdd, vh.ResponseHeadersToRemove, r.ResponseHeadersToAdd, r.ResponseHeadersToRemove); err != nil {
		return nil, err
	}
	ra := r.GetRoute()
	if ra == nil {
		return c, nil
	}
	if ra.HedgePolicy != nil || ra.RetryPolicyTypedConfig != nil {
		return nil, fmt.Errorf("hedge_policy and retry_policy_typed_config are not supported")
	}
	for _, wc := range ra.GetWeightedClusters().GetClusters() {
		var arm ArmOps
		if arm.ReqOps, err = compileHeaderOps(nil, nil, wc.RequestHeadersToAdd, wc.RequestHeadersToRemove); err != nil {
			return nil, err
		}
		if arm.RespOps, err = compileHeaderOps(nil, nil, wc.ResponseHeadersToAdd, wc.ResponseHeadersToRemove); err != nil {
			return nil, err
		}
		c.Arms = append(c.Arms, arm)
	}
	c.Timeout, c.AttemptCount, c.AttemptCountInResponse = DefaultTimeout, vh.IncludeRequestAttemptCount, vh.IncludeAttemptCountInResponse
	if ra.Timeout != nil {
		c.Timeout = ra.Timeout.AsDuration()
	}
	if c.Timeout > 0 {
		c.timeoutValue = []string{strconv.FormatInt(c.Timeout.Milliseconds(), 10)}
	}
	c.BufferLimit = bufferLimit(vh.RequestBodyBufferLimit.GetValue(), vh.PerRequestBufferLimitBytes.GetValue(), 0)
	c.BufferLimit = bufferLimit(r.RequestBodyBufferLimit.GetValue(), r.PerRequestBufferLimitBytes.GetValue(), c.BufferLimit)
	if len(ra.HashPolicy) > 0 {
		hp, err := upstream.CompileHashPolicy(ra.HashPolicy)
		if err != nil {
			return nil, err
		}
		c.Hash = hp
	}
	rp := ra.RetryPolicy
	if rp == nil {
		rp = vh.RetryPolicy
	}
	if rp != nil {
		p, err := compileRetryPolicy(rp)
		if err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
		c.Retry = p
	}
	mirrors := ra.RequestMirrorPolicies
	if len(mirrors) == 0 {
		mirrors = vh.RequestMirrorPolicies
	}
	for _, m := range mirrors {
		mp, err := compileMirror(m)
		if err != nil {
			return nil, err
		}
		if mp.Fraction.Numerator > 0 {
			c.Mirrors = append(c.Mirrors, mp)
		}
	}
	return c, nil
}

// bufferLimit picks the most specific request buffer limit: the newer
// 64-bit field, else the deprecated 32-bit one, else the inherited one.
func bufferLimit(v64 uint64, v32 uint32, inherited int64) int64 {
	switch {
	case v64 > 0:
		return int64(min(v64, 1<<40))
	case v32 > 0:
		return int64(v32)
	}
	return inherited
}
