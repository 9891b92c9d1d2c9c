package cors_test

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// Tests of the filter's per-route compile, through the route table's
// compile as the proxy runs it.

type Fraction = httpfilter.Fraction

var Always = httpfilter.Always

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

func exact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

func fwd(name, cluster string, m *route.RouteMatch) *route.Route {
	return &route.Route{Name: name, Match: m, Action: &route.Route_Route{Route: &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster}}}}
}

func compileOne(vh *route.VirtualHost) (*routes.Route, error) {
	vh.Name, vh.Domains = "vh", []string{"*"}
	tbl, err := routes.Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{vh}})
	if err != nil {
		return nil, err
	}
	return tbl.VirtualHost("any").Routes[0], nil
}

func corsCfg(t *testing.T, m proto.Message) map[string]*anypb.Any {
	return map[string]*anypb.Any{cors.Name: mustAny(t, m)}
}

func percent(n uint32) *core.RuntimeFractionalPercent {
	return &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}}
}

// TestCompileCors: the route's policy merged over its virtual host's field
// by field, FilterConfig wrapping, the deprecated route fields, rejections.
func TestCompileCors(t *testing.T) {
	prefixM := func(s string) *matcher.StringMatcher {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s}}
	}
	cases := []struct {
		name      string
		route, vh map[string]*anypb.Any
		legacyR   *route.CorsPolicy
		legacyVH  *route.CorsPolicy
		want      *cors.Policy // nil: no policy
		wantErr   string
	}{
		{name: "none"},
		{name: "route only, defaults", route: corsCfg(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcher.StringMatcher{exact("https://a")}}),
			want: &cors.Policy{ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "route over virtual host, field by field",
			route: corsCfg(t, &corsv3.CorsPolicy{AllowMethods: "GET", AllowCredentials: wrapperspb.Bool(false), FilterEnabled: percent(50)}),
			vh: corsCfg(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcher.StringMatcher{exact("https://a")}, AllowMethods: "PUT",
				AllowHeaders: "x-h", ExposeHeaders: "x-e", MaxAge: "60", AllowCredentials: wrapperspb.Bool(true),
				ForwardNotMatchingPreflights: wrapperspb.Bool(false), AllowPrivateNetworkAccess: wrapperspb.Bool(true), ShadowEnabled: percent(100)}),
			want: &cors.Policy{AllowMethods: "GET", AllowHeaders: "x-h", ExposeHeaders: "x-e", MaxAge: "60", AllowCredentials: false,
				AllowPrivateNetworkAccess: true, ForwardNotMatchingPreflights: false, Enabled: Fraction{Numerator: 50, Denominator: 100}, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "wrapped in a FilterConfig", route: corsCfg(t, &route.FilterConfig{Config: mustAny(t, &corsv3.CorsPolicy{MaxAge: "5"})}),
			want: &cors.Policy{MaxAge: "5", ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "disabled on the route", route: corsCfg(t, &route.FilterConfig{Disabled: true}),
			vh: corsCfg(t, &corsv3.CorsPolicy{MaxAge: "5"})},
		{name: "disabled on the virtual host, the route's own applies", route: corsCfg(t, &corsv3.CorsPolicy{MaxAge: "7"}),
			vh:   corsCfg(t, &route.FilterConfig{Disabled: true}),
			want: &cors.Policy{MaxAge: "7", ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "deprecated route fields when no per-filter config", legacyR: &route.CorsPolicy{AllowMethods: "POST"},
			legacyVH: &route.CorsPolicy{AllowHeaders: "x-l"},
			want:     &cors.Policy{AllowMethods: "POST", AllowHeaders: "x-l", ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "deprecated fields ignored beside a per-filter config", legacyR: &route.CorsPolicy{AllowMethods: "POST"},
			vh:   corsCfg(t, &corsv3.CorsPolicy{AllowMethods: "GET"}),
			want: &cors.Policy{AllowMethods: "GET", ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
		{name: "not a CorsPolicy", route: corsCfg(t, &structpb.Struct{}), wantErr: "cors"},
		{name: "bad origin regex", route: corsCfg(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcher.StringMatcher{
			{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "("}}}}}), wantErr: "allow_origin_string_match"},
		{name: "line break in a header value", route: corsCfg(t, &corsv3.CorsPolicy{AllowHeaders: "a\r\nb"}), wantErr: "line breaks"},
		{name: "prefix matcher compiles", route: corsCfg(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcher.StringMatcher{prefixM("https://")}}),
			want: &cors.Policy{ForwardNotMatchingPreflights: true, Enabled: Always, Shadow: Fraction{Numerator: 0, Denominator: 100}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := fwd("r", "c", prefix("/"))
			r.TypedPerFilterConfig = tc.route
			r.GetRoute().Cors = tc.legacyR                                                                      //nolint:staticcheck
			vh := &route.VirtualHost{Routes: []*route.Route{r}, TypedPerFilterConfig: tc.vh, Cors: tc.legacyVH} //nolint:staticcheck
			cr, err := compileOne(vh)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cors.PerRoute(cr)
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("policy %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if g, w := corsFields(got), corsFields(tc.want); g != w {
				t.Errorf("policy\n got %+v\nwant %+v", g, w)
			}
		})
	}
}

// TestCorsOriginAllowed: Envoy's rule: an origin is allowed when a matcher
// matches it, or matches "*" (so "*" and ".*" allow every origin).
func TestCorsOriginAllowed(t *testing.T) {
	re := func(s string) *matcher.StringMatcher {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: s}}}
	}
	cases := []struct {
		name    string
		matches []*matcher.StringMatcher
		allowed []string
		denied  []string
	}{
		{"exact", []*matcher.StringMatcher{exact("https://a.example")},
			[]string{"https://a.example"}, []string{"https://a.example:443", "https://A.example", "http://a.example", "https://a.example.evil"}},
		{"exact ignore case", []*matcher.StringMatcher{{MatchPattern: &matcher.StringMatcher_Exact{Exact: "https://A.example"}, IgnoreCase: true}},
			[]string{"https://a.EXAMPLE"}, []string{"https://b.example"}},
		{"prefix", []*matcher.StringMatcher{{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "https://dev."}}},
			[]string{"https://dev.x", "https://dev.a.b:8080"}, []string{"http://dev.x", "https://prod.dev.x"}},
		{"regex is whole-string", []*matcher.StringMatcher{re(`https://.*\.bar\.com`)},
			[]string{"https://www.bar.com", "https://a.b.bar.com"}, []string{"https://bar.com", "https://www.bar.com.evil", "xhttps://www.bar.com"}},
		{"exact *", []*matcher.StringMatcher{exact("*")}, []string{"https://anything", "null"}, nil},
		{"regex .*", []*matcher.StringMatcher{re(".*")}, []string{"https://anything"}, nil},
		{"several", []*matcher.StringMatcher{exact("https://a"), exact("https://b")}, []string{"https://a", "https://b"}, []string{"https://c"}},
		{"none", nil, nil, []string{"https://a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := fwd("r", "c", prefix("/"))
			r.TypedPerFilterConfig = corsCfg(t, &corsv3.CorsPolicy{AllowOriginStringMatch: tc.matches, AllowMethods: "GET"})
			cr, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tc.allowed {
				if !cors.PerRoute(cr).OriginAllowed(o) {
					t.Errorf("%q denied, want allowed", o)
				}
			}
			for _, o := range tc.denied {
				if cors.PerRoute(cr).OriginAllowed(o) {
					t.Errorf("%q allowed, want denied", o)
				}
			}
		})
	}
}

func TestCheckCorsFilter(t *testing.T) {
	if err := cors.CheckListenerConfig(mustAny(t, &corsv3.Cors{})); err != nil {
		t.Errorf("Istio's empty cors filter: %v", err)
	}
	if err := cors.CheckListenerConfig(nil); err != nil {
		t.Errorf("no config: %v", err)
	}
	if err := cors.CheckListenerConfig(mustAny(t, &corsv3.CorsPolicy{})); err == nil {
		t.Error("a CorsPolicy is not the filter's config")
	}
	rc := &route.RouteConfiguration{Name: "t", TypedPerFilterConfig: corsCfg(t, &corsv3.CorsPolicy{})}
	if _, err := routes.Compile(rc); err == nil {
		t.Error("route-configuration-level typed_per_filter_config must be rejected, not ignored")
	}
}

// corsView is a policy's exported fields (the origin matchers are tried
// by TestCorsOriginAllowed).
type corsView struct {
	methods, headers, expose, maxAge         string
	credentials, private, forwardNotMatching bool
	enabled, shadow                          Fraction
}

func corsFields(p *cors.Policy) corsView {
	return corsView{p.AllowMethods, p.AllowHeaders, p.ExposeHeaders, p.MaxAge, p.AllowCredentials, p.AllowPrivateNetworkAccess,
		p.ForwardNotMatchingPreflights, p.Enabled, p.Shadow}
}
