package xdsgen

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Names of the extensions route resilience uses, as Envoy registers them.
const (
	FaultFilter                = "envoy.filters.http.fault"
	PreviousHostsPredicate     = "envoy.retry_host_predicates.previous_hosts"
	PreviousPrioritiesPriority = "envoy.retry_priorities.previous_priorities"
)

// Istio's default retry policy (pilot/pkg/networking/core/route/retry):
// two retries on connection failures, refused streams and the gRPC codes
// unavailable and cancelled, preferring hosts not tried yet. Since Istio
// 1.24 (EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY, default true) it no longer
// lists 503 in retriable_status_codes, though retry_on still names
// retriable-status-codes; sluice follows the current default.
const (
	defaultRetryOn                = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	defaultRetries                = 2
	defaultHostSelectionRetries   = 5
	exclude503FromDefaultRetries  = true
	previousPrioritiesUpdateEvery = 2 // Istio's update_frequency for retryRemoteLocalities
)

// defaultRetryPolicy is Istio's DefaultPolicy; without the previous_hosts
// predicate when the route hashes to a host (consistent hashing must keep
// retries on the same host).
func defaultRetryPolicy(consistentHash bool) *route.RetryPolicy {
	p := &route.RetryPolicy{
		NumRetries:                    wrapUint32(defaultRetries),
		RetryOn:                       defaultRetryOn,
		HostSelectionRetryMaxAttempts: defaultHostSelectionRetries,
	}
	if !exclude503FromDefaultRetries {
		p.RetriableStatusCodes = []uint32{http.StatusServiceUnavailable}
	}
	if !consistentHash {
		p.RetryHostPredicate = []*route.RetryPolicy_RetryHostPredicate{previousHosts()}
	}
	return p
}

func previousHosts() *route.RetryPolicy_RetryHostPredicate {
	cfg, _ := anypb.New(&previoushosts.PreviousHostsPredicate{})
	return &route.RetryPolicy_RetryHostPredicate{
		Name:       PreviousHostsPredicate,
		ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: cfg},
	}
}

// retryPolicy translates a route's retries as Istio's ConvertPolicy does:
// no retries block means the mesh's defaultHttpRetryPolicy, else Istio's
// default; attempts 0 disables retries (nil); otherwise the default with
// the fields the block sets. Numbers in retryOn become
// retriable_status_codes (and retriable-status-codes is added to retry_on).
func (g *generation) retryPolicy(in *networking.HTTPRetry, consistentHash bool) *route.RetryPolicy {
	if in == nil {
		in = g.push.Mesh.GetDefaultHttpRetryPolicy()
	}
	out := defaultRetryPolicy(consistentHash)
	if in == nil {
		return out
	}
	if in.Attempts <= 0 {
		return nil
	}
	out.NumRetries = wrapUint32(uint32(in.Attempts))
	if in.RetryOn != "" {
		out.RetryOn, out.RetriableStatusCodes = parseRetryOn(in.RetryOn)
		if len(out.RetriableStatusCodes) > 0 && !strings.Contains(out.RetryOn, "retriable-status-codes") {
			if out.RetryOn != "" {
				out.RetryOn += ","
			}
			out.RetryOn += "retriable-status-codes"
		}
	}
	if in.PerTryTimeout != nil {
		out.PerTryTimeout = durationpb.New(in.PerTryTimeout.AsDuration())
	}
	if in.RetryIgnorePreviousHosts != nil {
		out.RetryHostPredicate = nil
		if in.RetryIgnorePreviousHosts.GetValue() {
			out.RetryHostPredicate = []*route.RetryPolicy_RetryHostPredicate{previousHosts()}
		}
	}
	if in.RetryRemoteLocalities.GetValue() {
		cfg, _ := anypb.New(&previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: previousPrioritiesUpdateEvery})
		out.RetryPriority = &route.RetryPolicy_RetryPriority{
			Name:       PreviousPrioritiesPriority,
			ConfigType: &route.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: cfg},
		}
	}
	if in.Backoff != nil {
		out.RetryBackOff = &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(in.Backoff.AsDuration())}
	}
	return out
}

// parseRetryOn splits Istio's retryOn into Envoy's retry_on conditions and
// the HTTP status codes listed among them, dropping empty parts.
func parseRetryOn(s string) (string, []uint32) {
	var conds []string
	var codes []uint32
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
			codes = append(codes, uint32(n))
			continue
		}
		conds = append(conds, part)
	}
	return strings.Join(conds, ","), codes
}

// translateFault is Istio's TranslateFault: a fixed delay and an HTTP or
// gRPC abort, each with its percentage. An unset percentage stays unset
// for aborts and is the deprecated integer percent (0 when unset) for
// delays; Envoy reads an unset percentage as 0%, so such a fault never
// fires, as Istio documents ("if not specified, no request will be
// aborted/delayed").
func translateFault(in *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	if in == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := in.Delay; d != nil {
		if fd, ok := d.HttpDelayType.(*networking.HTTPFaultInjection_Delay_FixedDelay); ok {
			out.Delay = &faultcommon.FaultDelay{
				FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(fd.FixedDelay.AsDuration())},
			}
			if d.Percentage != nil {
				out.Delay.Percentage = percentToFractional(d.Percentage)
			} else {
				out.Delay.Percentage = integerToFractional(d.Percent) //nolint:staticcheck // Istio still honours it
			}
		}
	}
	if a := in.Abort; a != nil {
		abort := &faultv3.FaultAbort{}
		if a.Percentage != nil {
			abort.Percentage = percentToFractional(a.Percentage)
		}
		switch et := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(et.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcStatusCodes[et.GrpcStatus]}
		default:
			abort = nil // HTTP/2 errors are rejected by validation
		}
		out.Abort = abort
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// grpcStatusCodes maps the gRPC status names Istio accepts to their codes.
var grpcStatusCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
	"NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
	"FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
	"INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// percentToFractional is Istio's translatePercentToFractionalPercent: a
// double percentage as parts per million.
func percentToFractional(p *networking.Percent) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(p.GetValue() * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

func integerToFractional(p int32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(p), Denominator: typev3.FractionalPercent_HUNDRED}
}

// mirrorPolicies translates mirror (with mirrorPercentage, or the
// deprecated mirrorPercent) and mirrors[] as Istio does: 100% when no
// percentage is given, no mirroring for an explicit 0.
func (g *generation) mirrorPolicies(hr *networking.HTTPRoute, ns string, rc routeContext) []*route.RouteAction_RequestMirrorPolicy {
	var out []*route.RouteAction_RequestMirrorPolicy
	if hr.Mirror != nil {
		var frac *typev3.FractionalPercent
		switch {
		case hr.MirrorPercentage != nil:
			if hr.MirrorPercentage.GetValue() > 0 {
				frac = percentToFractional(hr.MirrorPercentage)
			}
		case hr.MirrorPercent != nil: //nolint:staticcheck // deprecated, still honoured
			if v := hr.MirrorPercent.GetValue(); v > 0 { //nolint:staticcheck
				frac = integerToFractional(int32(v))
			}
		default:
			frac = integerToFractional(100)
		}
		if frac != nil {
			out = append(out, mirrorPolicy(g.destinationCluster(hr.Mirror, ns, rc), frac))
		}
	}
	for _, m := range hr.Mirrors {
		if m.GetDestination() == nil {
			continue
		}
		frac := integerToFractional(100)
		if m.Percentage != nil {
			if m.Percentage.GetValue() <= 0 {
				continue
			}
			frac = percentToFractional(m.Percentage)
		}
		out = append(out, mirrorPolicy(g.destinationCluster(m.Destination, ns, rc), frac))
	}
	return out
}

func mirrorPolicy(cluster string, frac *typev3.FractionalPercent) *route.RouteAction_RequestMirrorPolicy {
	return &route.RouteAction_RequestMirrorPolicy{
		Cluster:         cluster,
		RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: frac},
		TraceSampled:    wrapBool(false),
	}
}

// addResilience sets what a forwarding route does about failure and
// testing: mirrors and the retry policy. It runs after forwardAction so it
// sees a hash policy there (Istio drops the previous_hosts predicate for a
// single destination that hashes).
func (g *generation) addResilience(ra *route.RouteAction, hr *networking.HTTPRoute, ns string, rc routeContext) {
	ra.RequestMirrorPolicies = g.mirrorPolicies(hr, ns, rc)
	consistentHash := len(hr.Route) == 1 && len(ra.HashPolicy) > 0
	ra.RetryPolicy = g.retryPolicy(hr.Retries, consistentHash)
}

// withDefaultRetry gives a service's default route (no VirtualService) the
// mesh's default retry policy, as Istio's BuildDefaultHTTPOutboundRoute
// does: with the previous_hosts predicate even when the route hashes
// (Istio only drops it for VirtualService routes).
func (g *generation) withDefaultRetry(r *route.Route) *route.Route {
	if ra := r.GetRoute(); ra != nil {
		ra.RetryPolicy = g.retryPolicy(nil, false)
	}
	return r
}

// inboundRetryPolicy is Istio's inbound retry (1.24+,
// ENABLE_INBOUND_RETRY_POLICY default true): requests reset before they
// reached the application are retried twice.
func inboundRetryPolicy() *route.RetryPolicy {
	return &route.RetryPolicy{RetryOn: "reset-before-request", NumRetries: wrapUint32(2)}
}

// faultHTTPFilter is the fault filter Istio puts in every HTTP connection
// manager, before the router, with an empty config: faults come from the
// routes' typed_per_filter_config.
func faultHTTPFilter() (*anypb.Any, error) { return anypb.New(&faultv3.HTTPFault{}) }

// faultPerFilterConfig is the per-route config for a fault, or nil.
func faultPerFilterConfig(in *networking.HTTPFaultInjection) map[string]*anypb.Any {
	f := translateFault(in)
	if f == nil {
		return nil
	}
	a, err := anypb.New(f)
	if err != nil {
		return nil
	}
	return map[string]*anypb.Any{FaultFilter: a}
}

// validateRouteExtensions runs ValidateAll on the typed configs inside a
// route configuration (per-filter configs, retry extensions), which the
// route's own ValidateAll does not open.
func validateRouteExtensions(rc *route.RouteConfiguration) error {
	check := func(m map[string]*anypb.Any) error {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if err := validateAny(m[name]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, vh := range rc.VirtualHosts {
		if err := check(vh.TypedPerFilterConfig); err != nil {
			return err
		}
		for _, r := range vh.Routes {
			if err := check(r.TypedPerFilterConfig); err != nil {
				return err
			}
			rp := r.GetRoute().GetRetryPolicy()
			for _, p := range rp.GetRetryHostPredicate() {
				if err := validateAny(p.GetTypedConfig()); err != nil {
					return err
				}
			}
			if err := validateAny(rp.GetRetryPriority().GetTypedConfig()); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateHTTPFilters validates the HTTP filters' typed configs inside an
// HTTP connection manager config (other network filters pass).
func validateHTTPFilters(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	var m hcm.HttpConnectionManager
	if a.MessageIs(&m) {
		if err := a.UnmarshalTo(&m); err != nil {
			return err
		}
		for _, f := range m.HttpFilters {
			if err := validateAny(f.GetTypedConfig()); err != nil {
				return fmt.Errorf("http filter %s: %w", f.Name, err)
			}
		}
	}
	return nil
}

// includeAttemptCount is Istio's proxy headers setting for outbound
// virtual hosts: x-envoy-attempt-count is sent upstream unless
// meshConfig.defaultConfig.proxyHeaders.attemptCount.disabled is true.
func (g *generation) includeAttemptCount() bool {
	return !g.push.Mesh.GetDefaultConfig().GetProxyHeaders().GetAttemptCount().GetDisabled().GetValue()
}
