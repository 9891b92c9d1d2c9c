package router

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	previouspriorities "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func prefix(p string) *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: p}}
}

func fwd(name, cluster string, m *route.RouteMatch) *route.Route {
	return &route.Route{Name: name, Match: m, Action: &route.Route_Route{Route: &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster}}}}
}

// compileOne compiles a route table of one virtual host and returns the
// router filter's config for its first route.
func compileOne(vh *route.VirtualHost) (*Config, error) {
	vh.Name, vh.Domains = "vh", []string{"*"}
	tbl, err := routes.Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{vh}})
	if err != nil {
		return nil, err
	}
	return PerRoute(tbl.VirtualHost("any").Routes[0]), nil
}

// TestCompileRetryPolicy compiles Istio's default policy and a full one.
func TestCompileRetryPolicy(t *testing.T) {
	r := fwd("r", "c", prefix("/"))
	r.GetRoute().RetryPolicy = &route.RetryPolicy{
		RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries:                    wrapperspb.UInt32(2),
		HostSelectionRetryMaxAttempts: 5,
		RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushosts.PreviousHostsPredicate{})}}},
	}
	cr, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}, IncludeRequestAttemptCount: true})
	if err != nil {
		t.Fatal(err)
	}
	p := cr.Retry
	want := RetryConnectFailure | RetryRefusedStream | RetryGrpcUnavailable | RetryGrpcCancelled | RetryRetriableStatusCodes
	if p == nil || p.On != want || p.NumRetries != 2 || !p.PreviousHosts || p.HostSelectionMaxAttempts != 5 ||
		p.BaseInterval != 25*time.Millisecond || p.MaxInterval != 250*time.Millisecond || p.PerTryTimeout != 0 {
		t.Fatalf("Istio's default policy compiled to %+v", p)
	}
	if !cr.AttemptCount {
		t.Error("include_request_attempt_count lost")
	}

	r = fwd("r", "c", prefix("/"))
	r.GetRoute().RetryPolicy = &route.RetryPolicy{
		RetryOn:              "gateway-error,retriable-status-codes,retriable-headers",
		RetriableStatusCodes: []uint32{409},
		PerTryTimeout:        durationpb.New(300 * time.Millisecond),
		RetryBackOff:         &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond)},
		RetryPriority: &route.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities",
			ConfigType: &route.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: mustAny(t, &previouspriorities.PreviousPrioritiesConfig{UpdateFrequency: 2})}},
		RetriableHeaders: []*route.HeaderMatcher{{Name: "x-retry-me", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}},
	}
	cr, err = compileOne(&route.VirtualHost{Routes: []*route.Route{r}})
	if err != nil {
		t.Fatal(err)
	}
	p = cr.Retry
	if p.NumRetries != 1 || p.PerTryTimeout != 300*time.Millisecond || p.BaseInterval != 10*time.Millisecond ||
		p.MaxInterval != 100*time.Millisecond || p.PriorityUpdateFrequency != 2 || p.PreviousHosts {
		t.Fatalf("compiled %+v", p)
	}
	for _, tc := range []struct {
		status int
		hdr    http.Header
		want   bool
	}{
		{502, nil, true}, {503, nil, true}, {504, nil, true}, {500, nil, false}, {409, nil, true}, {404, nil, false},
		{200, http.Header{"X-Retry-Me": {"1"}}, true},
		{503, http.Header{"X-Envoy-Ratelimited": {"true"}}, false}, // never, without envoy-ratelimited
	} {
		if got := p.RetriableResponse(tc.status, tc.hdr); got != tc.want {
			t.Errorf("status %d headers %v: retriable %v, want %v", tc.status, tc.hdr, got, tc.want)
		}
	}
}

func TestRetriableResponseGRPC(t *testing.T) {
	on, _ := ParseRetryOn("cancelled,unavailable")
	p := &RetryPolicy{On: on}
	for status, want := range map[string]bool{"1": true, "14": true, "4": false, "13": false, "0": false} {
		if got := p.RetriableResponse(200, http.Header{"Grpc-Status": {status}}); got != want {
			t.Errorf("grpc-status %s: %v, want %v", status, got, want)
		}
	}
	if p.RetriableResponse(503, http.Header{}) {
		t.Error("a 503 without retriable-status-codes or 5xx is not retried")
	}
	all, _ := ParseRetryOn("5xx")
	if !(&RetryPolicy{On: all}).RetriableResponse(500, nil) {
		t.Error("5xx retries 500")
	}
}

// TestRetryPolicyRejections: what sluice cannot honour is an error, never
// ignored.
func TestRetryPolicyRejections(t *testing.T) {
	cases := map[string]*route.RetryPolicy{
		"unknown condition": {RetryOn: "5xx,sometimes"},
		"per-try idle":      {RetryOn: "5xx", PerTryIdleTimeout: durationpb.New(time.Second)},
		"other predicate":   {RetryOn: "5xx", RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.omit_canary_hosts"}}},
		"other priority":    {RetryOn: "5xx", RetryPriority: &route.RetryPolicy_RetryPriority{Name: "custom"}},
		"backoff max<base": {RetryOn: "5xx", RetryBackOff: &route.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(time.Second), MaxInterval: durationpb.New(time.Millisecond)}},
		"rate limited backoff": {RetryOn: "5xx", RateLimitedRetryBackOff: &route.RetryPolicy_RateLimitedRetryBackOff{}},
	}
	for name, rp := range cases {
		r := fwd("r", "c", prefix("/"))
		r.GetRoute().RetryPolicy = rp
		if _, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r := fwd("r", "c", prefix("/"))
	r.GetRoute().HedgePolicy = &route.HedgePolicy{}
	if _, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err == nil {
		t.Error("hedge_policy accepted")
	}
}

// TestVirtualHostRetryPolicy: a route without a policy takes the virtual
// host's; its own replaces it entirely.
func TestVirtualHostRetryPolicy(t *testing.T) {
	own := fwd("own", "c", prefix("/own"))
	own.GetRoute().RetryPolicy = &route.RetryPolicy{RetryOn: "reset", NumRetries: wrapperspb.UInt32(7)}
	vh := &route.VirtualHost{Name: "vh", Domains: []string{"*"}, Routes: []*route.Route{own, fwd("inherit", "c", prefix("/"))},
		RetryPolicy: &route.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3)}}
	tbl, err := routes.Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{vh}})
	if err != nil {
		t.Fatal(err)
	}
	if p := PerRoute(tbl.VirtualHost("any").Routes[0]).Retry; p.On != RetryReset || p.NumRetries != 7 {
		t.Errorf("own policy: %+v", p)
	}
	if p := PerRoute(tbl.VirtualHost("any").Routes[1]).Retry; p.On != Retry5xx || p.NumRetries != 3 {
		t.Errorf("inherited policy: %+v", p)
	}
}

func TestCompileMirrors(t *testing.T) {
	r := fwd("r", "c", prefix("/"))
	r.GetRoute().RequestMirrorPolicies = []*route.RouteAction_RequestMirrorPolicy{
		{Cluster: "shadow", RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 250000, Denominator: typev3.FractionalPercent_MILLION}}, TraceSampled: wrapperspb.Bool(false)},
		{Cluster: "all"},
		{Cluster: "never", RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{}}},
		{Cluster: "keep", DisableShadowHostSuffixAppend: true},
	}
	cr, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}})
	if err != nil {
		t.Fatal(err)
	}
	m := cr.Mirrors
	if len(m) != 3 || m[0] != (MirrorPolicy{Cluster: "shadow", Fraction: Fraction{Numerator: 250000, Denominator: 1_000_000}}) ||
		m[1] != (MirrorPolicy{Cluster: "all", Fraction: Always}) || !m[2].KeepHost {
		t.Fatalf("mirrors %+v", m)
	}
	r.GetRoute().RequestMirrorPolicies = []*route.RouteAction_RequestMirrorPolicy{{ClusterHeader: "x-cluster"}}
	if _, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err == nil {
		t.Error("cluster_header accepted")
	}
}

// TestFractionSample checks sampling against its expectation over many
// draws (tolerance: 5 standard deviations).
func TestFractionSample(t *testing.T) {
	for _, f := range []Fraction{{Numerator: 125000, Denominator: 1_000_000}, {Numerator: 50, Denominator: 100}, {Numerator: 1, Denominator: 10_000}, {Numerator: 0, Denominator: 100}, {Numerator: 100, Denominator: 100}, Always} {
		const n = 200_000
		hits := 0
		for range n {
			if f.Sample(rand.Uint64()) {
				hits++
			}
		}
		p := float64(f.Numerator) / float64(f.Denominator)
		sd := 5 * math.Sqrt(n*p*(1-p))
		if d := float64(hits) - n*p; d > sd+0.5 || -d > sd+0.5 {
			t.Errorf("%+v: %d of %d, expected %.0f ± %.0f", f, hits, n, n*p, sd)
		}
	}
}

// TestRouterPerFilterConfigRejected: the router has no per-route config;
// one given is rejected, not ignored.
func TestRouterPerFilterConfigRejected(t *testing.T) {
	r := fwd("r", "c", prefix("/"))
	r.TypedPerFilterConfig = map[string]*anypb.Any{Name: mustAny(t, &routerv3.Router{})}
	if _, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err == nil || !strings.Contains(err.Error(), Name) {
		t.Errorf("err = %v, want a rejection naming the router filter", err)
	}
	c, err := compileOne(&route.VirtualHost{Routes: []*route.Route{fwd("r", "c", prefix("/"))}})
	if err != nil || c == nil || c.Timeout != DefaultTimeout || c.Retry != nil {
		t.Errorf("a plain route: %+v, %v", c, err)
	}
}
