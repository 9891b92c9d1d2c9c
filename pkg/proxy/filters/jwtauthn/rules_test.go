package jwtauthn

import (
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRuleMatch: the first rule whose match holds decides; a token is
// required only on the rules that require one.
func TestRuleMatch(t *testing.T) {
	key := newSigner(t, jose.RS256, "k")
	req := providerReq("p")
	rule := func(m *route.RouteMatch) *jwtv3.RequirementRule {
		return &jwtv3.RequirementRule{Match: m, RequirementType: &jwtv3.RequirementRule_Requires{Requires: req}}
	}
	c := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": istioProvider(iss, jwks(t, key.jwk()))},
		Rules: []*jwtv3.RequirementRule{
			prefixRule("/public", nil),
			rule(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/exact"}}),
			rule(&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}),
			rule(&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/v[0-9]+/.*"}}}),
			rule(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/CI"}, CaseSensitive: wrapperspb.Bool(false)}),
			rule(&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/h"},
				Headers: []*route.HeaderMatcher{{Name: "x-secure", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}),
		}}
	f := compiled(t, c)
	for path, required := range map[string]bool{
		"/public/x": false, "/exact": true, "/exact/more": false, "/Exact": false,
		"/api": true, "/api/x": true, "/apix": false, "/v2/a": true, "/v2": false,
		"/ci/x": true, "/cI": true, "/h": false, "/other": false, "/exact?q=1": true,
	} {
		res := run(t, f, path, nil)
		if res.answered != required {
			t.Errorf("%s: token required=%v, want %v", path, res.answered, required)
		}
	}
	if res := run(t, f, "/h", map[string]string{"X-Secure": "1"}); !res.answered {
		t.Error("/h with x-secure: token not required")
	}
}
