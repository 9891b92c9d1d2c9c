package security

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplate "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Envoy matchers as Istio's pilot/pkg/security/authz/matcher package
// builds them (string.go, header.go, metadata.go, template.go), and the
// RBAC permission/principal constructors of authz/model
// (permission.go, principal.go).

func stringMatcherRegex(regex string) *matcherpb.StringMatcher {
	return &matcherpb.StringMatcher{MatchPattern: &matcherpb.StringMatcher_SafeRegex{SafeRegex: &matcherpb.RegexMatcher{Regex: regex}}}
}

func stringMatcherPrefix(prefix string, ignoreCase bool) *matcherpb.StringMatcher {
	return &matcherpb.StringMatcher{IgnoreCase: ignoreCase, MatchPattern: &matcherpb.StringMatcher_Prefix{Prefix: prefix}}
}

func stringMatcherSuffix(suffix string, ignoreCase bool) *matcherpb.StringMatcher {
	return &matcherpb.StringMatcher{IgnoreCase: ignoreCase, MatchPattern: &matcherpb.StringMatcher_Suffix{Suffix: suffix}}
}

func stringMatcherExact(exact string, ignoreCase bool) *matcherpb.StringMatcher {
	return &matcherpb.StringMatcher{IgnoreCase: ignoreCase, MatchPattern: &matcherpb.StringMatcher_Exact{Exact: exact}}
}

func stringMatcher(v string) *matcherpb.StringMatcher { return stringMatcherWithPrefix(v, "") }

// stringMatcherWithPrefix: "*" any non-empty value, "*x" suffix, "x*"
// prefix, else exact; prefix is prepended (source principals' spiffe://).
func stringMatcherWithPrefix(v, prefix string) *matcherpb.StringMatcher {
	switch {
	case v == "*":
		return stringMatcherRegex(".+")
	case strings.HasPrefix(v, "*"):
		if prefix == "" {
			return stringMatcherSuffix(strings.TrimPrefix(v, "*"), false)
		}
		return stringMatcherRegex(prefix + ".*" + regexp.QuoteMeta(strings.TrimPrefix(v, "*")))
	case strings.HasSuffix(v, "*"):
		return stringMatcherPrefix(prefix+strings.TrimSuffix(v, "*"), false)
	default:
		return stringMatcherExact(prefix+v, false)
	}
}

func orValueMatcher(ms []*matcherpb.ValueMatcher) *matcherpb.ValueMatcher {
	if len(ms) == 1 {
		return ms[0]
	}
	return &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_OrMatch{OrMatch: &matcherpb.OrMatcher{ValueMatchers: ms}}}
}

func stringOrMatcher(vs []string) *matcherpb.ValueMatcher {
	ms := make([]*matcherpb.ValueMatcher, 0, len(vs))
	for _, v := range vs {
		ms = append(ms, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_StringMatch{StringMatch: stringMatcher(v)}})
	}
	return orValueMatcher(ms)
}

// headerMatcher: "*" present, "*x" suffix, "x*" prefix, else exact;
// ignoreCase for the host header (HostMatcher).
func headerMatcher(name, v string, ignoreCase bool) *routepb.HeaderMatcher {
	var sm *matcherpb.StringMatcher
	switch {
	case v == "*":
		return &routepb.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routepb.HeaderMatcher_PresentMatch{PresentMatch: true}}
	case strings.HasPrefix(v, "*"):
		sm = stringMatcherSuffix(v[1:], ignoreCase)
	case strings.HasSuffix(v, "*"):
		sm = stringMatcherPrefix(v[:len(v)-1], ignoreCase)
	default:
		sm = stringMatcherExact(v, ignoreCase)
	}
	return &routepb.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routepb.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func pathSegments(keys []string) []*matcherpb.MetadataMatcher_PathSegment {
	out := make([]*matcherpb.MetadataMatcher_PathSegment, 0, len(keys))
	for _, k := range keys {
		out = append(out, &matcherpb.MetadataMatcher_PathSegment{Segment: &matcherpb.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return out
}

func metadataValueMatcher(filter, key string, m *matcherpb.ValueMatcher) *matcherpb.MetadataMatcher {
	return &matcherpb.MetadataMatcher{Filter: filter, Path: pathSegments([]string{key}), Value: m}
}

// metadataListValueMatcher matches a list at path holding a value that
// matches value; with extendedJWT also a scalar matching value (Istio's
// MetadataListValueMatcher with useExtendedJwt, used for JWT claims).
func metadataListValueMatcher(filter string, keys []string, value *matcherpb.ValueMatcher, extendedJWT bool) *matcherpb.MetadataMatcher {
	list := &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_ListMatch{ListMatch: &matcherpb.ListMatcher{
		MatchPattern: &matcherpb.ListMatcher_OneOf{OneOf: value}}}}
	out := &matcherpb.MetadataMatcher{Filter: filter, Path: pathSegments(keys), Value: list}
	if extendedJWT {
		out.Value = &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_OrMatch{OrMatch: &matcherpb.OrMatcher{
			ValueMatchers: []*matcherpb.ValueMatcher{list, value}}}}
	}
	return out
}

// JWT metadata: the jwt_authn filter's verified payload (model/util.go).
const (
	JwtFilterName    = "envoy.filters.http.jwt_authn"
	JwtPayloadKey    = "payload"
	uriTemplateName  = "uri-template"
	peerPrincipalKey = "io.istio.peer_principal"
)

func metadataStringMatcherForJWTClaim(claim string, m *matcherpb.StringMatcher) *matcherpb.MetadataMatcher {
	return &matcherpb.MetadataMatcher{Filter: JwtFilterName, Path: pathSegments([]string{JwtPayloadKey, claim}),
		Value: &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_StringMatch{StringMatch: m}}}
}

func metadataListValueMatcherForJWTClaims(claims []string, value *matcherpb.ValueMatcher) *matcherpb.MetadataMatcher {
	return metadataListValueMatcher(JwtFilterName, append([]string{JwtPayloadKey}, claims...), value, true)
}

var templateReplacer = strings.NewReplacer(config.MatchOneTemplate, "*", config.MatchAnyTemplate, "**")

func pathTemplate(path string) (*rbacpb.Permission, error) {
	typed, err := toAny(&uritemplate.UriTemplateMatchConfig{PathTemplate: templateReplacer.Replace(path)})
	if err != nil {
		return nil, err
	}
	return &rbacpb.Permission{Rule: &rbacpb.Permission_UriTemplate{UriTemplate: &core.TypedExtensionConfig{
		Name: uriTemplateName, TypedConfig: typed}}}, nil
}

func cidrRange(addr string) (*core.CidrRange, error) {
	var prefix netip.Prefix
	if strings.Contains(addr, "/") {
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return nil, err
		}
		prefix = p
	} else {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address: %w", addr, err)
		}
		prefix = netip.PrefixFrom(a, a.BitLen())
	}
	return &core.CidrRange{AddressPrefix: prefix.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(prefix.Bits()))}, nil
}

// Permissions and principals.

func permissionAny() *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_Any{Any: true}}
}
func permissionAnd(ps []*rbacpb.Permission) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_AndRules{AndRules: &rbacpb.Permission_Set{Rules: ps}}}
}
func permissionOr(ps []*rbacpb.Permission) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_OrRules{OrRules: &rbacpb.Permission_Set{Rules: ps}}}
}
func permissionNot(p *rbacpb.Permission) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_NotRule{NotRule: p}}
}
func permissionHeader(h *routepb.HeaderMatcher) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_Header{Header: h}}
}
func permissionMetadata(m *matcherpb.MetadataMatcher) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_Metadata{Metadata: m}}
}

func principalAny() *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_Any{Any: true}}
}
func principalAnd(ps []*rbacpb.Principal) *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_AndIds{AndIds: &rbacpb.Principal_Set{Ids: ps}}}
}
func principalOr(ps []*rbacpb.Principal) *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_OrIds{OrIds: &rbacpb.Principal_Set{Ids: ps}}}
}
func principalNot(p *rbacpb.Principal) *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_NotId{NotId: p}}
}
func principalMetadata(m *matcherpb.MetadataMatcher) *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_Metadata{Metadata: m}}
}

// principalAuthenticated matches the peer certificate's URI SAN (sidecars
// and gateways); waypoints (useAuthenticated false) read filter state.
func principalAuthenticated(name *matcherpb.StringMatcher, useAuthenticated bool) *rbacpb.Principal {
	if useAuthenticated {
		return &rbacpb.Principal{Identifier: &rbacpb.Principal_Authenticated_{Authenticated: &rbacpb.Principal_Authenticated{PrincipalName: name}}}
	}
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_FilterState{FilterState: &matcherpb.FilterStateMatcher{
		Key: peerPrincipalKey, Matcher: &matcherpb.FilterStateMatcher_StringMatch{StringMatch: name}}}}
}

// toAny packs m deterministically (RBAC policies are maps), so equal
// configs give equal bytes and equal xDS versions.
func toAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}
