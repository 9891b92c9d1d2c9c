package security

import (
	"fmt"
	"slices"
	"sort"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// jwtConfig is Istio's convertToEnvoyJwtConfig
// (pilot/pkg/security/authn/policy_applier.go) in its istiod JWKS fetch
// mode: one provider "origins-<i>" per jwtRule (rules sorted by issuer),
// its JWKS inlined as local_jwks; a request with no token passes, a token
// must verify with some provider. clearRouteCache is set on gateways.
// notes name the issuers whose JWKS could not be fetched (their tokens
// then fail: PublicOnlyJwks).
func jwtConfig(push *model.PushContext, policies []*model.RequestAuthentication, clearRouteCache bool) (*jwtpb.JwtAuthentication, []string) {
	var rules []*securityv1beta1.JWTRule
	for _, ra := range policies {
		rules = append(rules, ra.Spec.GetJwtRules()...)
	}
	if len(rules) == 0 {
		return nil, nil
	}
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].GetIssuer() < rules[j].GetIssuer() })
	var notes []string
	providers := map[string]*jwtpb.JwtProvider{}
	var innerAnd, outerOr []*jwtpb.JwtRequirement
	for i, r := range rules {
		keys, err := push.LocalJwks(r)
		if err != nil {
			notes = append(notes, fmt.Sprintf("JWKS of issuer %q (%s) unavailable, its tokens are refused: %v", r.GetIssuer(), r.GetJwksUri(), err))
		}
		p := &jwtpb.JwtProvider{
			Issuer:               r.Issuer,
			Audiences:            r.Audiences,
			Forward:              r.ForwardOriginalToken,
			ForwardPayloadHeader: r.OutputPayloadToHeader,
			PayloadInMetadata:    JwtPayloadKey,
			NormalizePayloadInMetadata: &jwtpb.JwtProvider_NormalizePayload{
				SpaceDelimitedClaims: spaceDelimitedClaims(r.SpaceDelimitedClaims),
			},
			ClearRouteCache: clearRouteCache,
			FromParams:      r.FromParams,
			FromCookies:     r.FromCookies,
			JwksSourceSpecifier: &jwtpb.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{
				Specifier: &core.DataSource_InlineString{InlineString: keys}}},
		}
		for _, c := range r.OutputClaimToHeaders {
			p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtpb.JwtClaimToHeader{HeaderName: c.Header, ClaimName: c.Claim})
		}
		for _, h := range r.FromHeaders {
			p.FromHeaders = append(p.FromHeaders, &jwtpb.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
		}
		name := fmt.Sprintf("origins-%d", i)
		providers[name] = p
		innerAnd = append(innerAnd, requiresAny(providerRequirement(name), &jwtpb.JwtRequirement{
			RequiresType: &jwtpb.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}))
		outerOr = append(outerOr, providerRequirement(name))
	}
	requires := innerAnd[0]
	if len(innerAnd) > 1 {
		// {P1, P2, ..., AND{OR{P1, allow_missing}, OR{P2, allow_missing}, ...}}:
		// providers sharing a token location still pass.
		outerOr = append(outerOr, &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_RequiresAll{
			RequiresAll: &jwtpb.JwtRequirementAndList{Requirements: innerAnd}}})
		requires = requiresAny(outerOr...)
	}
	return &jwtpb.JwtAuthentication{
		Rules: []*jwtpb.RequirementRule{{
			Match:           &routepb.RouteMatch{PathSpecifier: &routepb.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtpb.RequirementRule_Requires{Requires: requires},
		}},
		Providers:           providers,
		BypassCorsPreflight: true,
	}, notes
}

func providerRequirement(name string) *jwtpb.JwtRequirement {
	return &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_ProviderName{ProviderName: name}}
}

func requiresAny(rs ...*jwtpb.JwtRequirement) *jwtpb.JwtRequirement {
	return &jwtpb.JwtRequirement{RequiresType: &jwtpb.JwtRequirement_RequiresAny{
		RequiresAny: &jwtpb.JwtRequirementOrList{Requirements: rs}}}
}

// spaceDelimitedClaims is buildSpaceDelimitedClaims: "permission" and
// "scope" always, plus the rule's, sorted.
func spaceDelimitedClaims(extra []string) []string {
	def := []string{"permission", "scope"}
	if extra == nil {
		return def
	}
	out := append(append([]string{}, extra...), def...)
	slices.Sort(out)
	return slices.Compact(out)
}
