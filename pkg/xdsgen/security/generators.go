package security

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// The per-attribute generators of Istio's
// pilot/pkg/security/authz/model/generator.go: each turns one value of an
// attribute into an RBAC permission or principal. An error on a TCP
// filter chain ("... is HTTP only") drops the rule from ALLOW policies
// (the rule can never match) and only the condition from DENY and AUDIT
// ones (model.go, checkError).

var errUnimplemented = errors.New("unimplemented")

type generator interface {
	permission(key, value string, forTCP bool) (*rbacpb.Permission, error)
	principal(key, value string, forTCP, useAuthenticated bool) (*rbacpb.Principal, error)
}

// extendedGenerator takes all values at once (JWT claims and metadata).
type extendedGenerator interface {
	extendedPermission(key string, values []string, forTCP bool) (*rbacpb.Permission, error)
	extendedPrincipal(key string, values []string, forTCP bool) (*rbacpb.Principal, error)
}

func httpOnly(key string) error { return fmt.Errorf("%q is HTTP only", key) }

// noPrincipal / noPermission fill the half a generator does not implement.
type noPrincipal struct{}

func (noPrincipal) principal(string, string, bool, bool) (*rbacpb.Principal, error) {
	return nil, errUnimplemented
}

type noPermission struct{}

func (noPermission) permission(string, string, bool) (*rbacpb.Permission, error) {
	return nil, errUnimplemented
}

type destIPGenerator struct{ noPrincipal }

func (destIPGenerator) permission(_, value string, _ bool) (*rbacpb.Permission, error) {
	c, err := cidrRange(value)
	if err != nil {
		return nil, err
	}
	return &rbacpb.Permission{Rule: &rbacpb.Permission_DestinationIp{DestinationIp: c}}, nil
}

type destPortGenerator struct{ noPrincipal }

func (destPortGenerator) permission(_, value string, _ bool) (*rbacpb.Permission, error) {
	p, err := strconv.ParseUint(value, 10, 32)
	if err != nil || p > 65535 {
		return nil, fmt.Errorf("invalid port %s", value)
	}
	return &rbacpb.Permission{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: uint32(p)}}, nil
}

type connSNIGenerator struct{ noPrincipal }

func (connSNIGenerator) permission(_, value string, _ bool) (*rbacpb.Permission, error) {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_RequestedServerName{RequestedServerName: stringMatcher(value)}}, nil
}

// envoyFilterGenerator: experimental.envoy.filters.a.b[c] matches the
// dynamic metadata of filter envoy.filters.a.b at key c; a value [v]
// matches a list holding v.
type envoyFilterGenerator struct{}

func (envoyFilterGenerator) extendedPermission(key string, values []string, _ bool) (*rbacpb.Permission, error) {
	parts := strings.SplitN(strings.TrimSuffix(strings.TrimPrefix(key, "experimental."), "]"), "[", 2)
	if len(parts) != 2 {
		return nil, fmt.Errorf("invalid key: %v", key)
	}
	var ms []*matcherpb.ValueMatcher
	for _, v := range values {
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			ms = append(ms, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_ListMatch{ListMatch: &matcherpb.ListMatcher{
				MatchPattern: &matcherpb.ListMatcher_OneOf{OneOf: &matcherpb.ValueMatcher{
					MatchPattern: &matcherpb.ValueMatcher_StringMatch{StringMatch: stringMatcher(strings.Trim(v, "[]"))}}}}}})
		} else {
			ms = append(ms, &matcherpb.ValueMatcher{MatchPattern: &matcherpb.ValueMatcher_StringMatch{StringMatch: stringMatcher(v)}})
		}
	}
	return permissionMetadata(metadataValueMatcher(parts[0], parts[1], orValueMatcher(ms))), nil
}

func (envoyFilterGenerator) extendedPrincipal(string, []string, bool) (*rbacpb.Principal, error) {
	return nil, errUnimplemented
}

type srcIPGenerator struct{ noPermission }

func (srcIPGenerator) principal(_, value string, _, _ bool) (*rbacpb.Principal, error) {
	c, err := cidrRange(value)
	if err != nil {
		return nil, err
	}
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_DirectRemoteIp{DirectRemoteIp: c}}, nil
}

type remoteIPGenerator struct{ noPermission }

func (remoteIPGenerator) principal(_, value string, _, _ bool) (*rbacpb.Principal, error) {
	c, err := cidrRange(value)
	if err != nil {
		return nil, err
	}
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_RemoteIp{RemoteIp: c}}, nil
}

type srcNamespaceGenerator struct{ noPermission }

func (srcNamespaceGenerator) principal(_, value string, _, useAuthenticated bool) (*rbacpb.Principal, error) {
	parts := strings.Split(value, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return principalAuthenticated(stringMatcherRegex(fmt.Sprintf(".*/ns/%s/.*", strings.Join(parts, ".*"))), useAuthenticated), nil
}

type srcServiceAccountGenerator struct {
	noPermission
	policyNamespace string
}

func (g srcServiceAccountGenerator) principal(_, value string, _, useAuthenticated bool) (*rbacpb.Principal, error) {
	ns, sa, ok := strings.Cut(value, "/")
	if !ok {
		ns, sa = g.policyNamespace, value
	}
	regex := fmt.Sprintf("spiffe://.+/ns/%s/(.+/|)sa/%s(/.+)?", regexp.QuoteMeta(ns), regexp.QuoteMeta(sa))
	return principalAuthenticated(stringMatcherRegex(regex), useAuthenticated), nil
}

type srcTrustDomainGenerator struct{ noPermission }

func (srcTrustDomainGenerator) principal(_, value string, _, useAuthenticated bool) (*rbacpb.Principal, error) {
	var m *matcherpb.StringMatcher
	switch {
	case value == "*":
		m = stringMatcherPrefix("spiffe://", false)
	case !strings.Contains(value, "*"):
		m = stringMatcherPrefix("spiffe://"+value+"/", false)
	default:
		parts := strings.SplitN(value, "*", 2)
		m = stringMatcherRegex(fmt.Sprintf("spiffe://%s/.*", regexp.QuoteMeta(parts[0])+"[^/]*"+regexp.QuoteMeta(parts[1])))
	}
	return principalAuthenticated(m, useAuthenticated), nil
}

type srcPrincipalGenerator struct{ noPermission }

func (srcPrincipalGenerator) principal(_, value string, _, useAuthenticated bool) (*rbacpb.Principal, error) {
	return principalAuthenticated(stringMatcherWithPrefix(value, "spiffe://"), useAuthenticated), nil
}

var matchAny = stringMatcherRegex(".+")

// requestPrincipalGenerator: "iss/sub" (the last '/' splits, issuers are
// URLs) as metadata matchers on the JWT payload's iss and sub.
type requestPrincipalGenerator struct{}

func (requestPrincipalGenerator) extendedPermission(string, []string, bool) (*rbacpb.Permission, error) {
	return nil, errUnimplemented
}

func (requestPrincipalGenerator) extendedPrincipal(key string, values []string, forTCP bool) (*rbacpb.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	var or []*rbacpb.Principal
	for _, value := range values {
		iss, sub := requestPrincipalMatchers(value)
		or = append(or, principalAnd([]*rbacpb.Principal{
			principalMetadata(metadataStringMatcherForJWTClaim("iss", iss)),
			principalMetadata(metadataStringMatcherForJWTClaim("sub", sub)),
		}))
	}
	switch len(or) {
	case 0:
		return nil, nil
	case 1:
		return or[0], nil
	}
	return principalOr(or), nil
}

func requestPrincipalMatchers(value string) (iss, sub *matcherpb.StringMatcher) {
	i := strings.LastIndex(value, "/")
	found := i >= 0
	issuer, subject := value, ""
	if found {
		issuer, subject = value[:i], value[i+1:]
	}
	switch {
	case value == "*":
		return matchAny, matchAny
	case strings.HasPrefix(value, "*"):
		if !found {
			return matchAny, stringMatcherSuffix(strings.TrimPrefix(value, "*"), false)
		}
		iss = matchAny
		if issuer != "*" {
			iss = stringMatcherSuffix(strings.TrimPrefix(issuer, "*"), false)
		}
		return iss, stringMatcherExact(subject, false)
	case strings.HasSuffix(value, "*"):
		if !found {
			return stringMatcherPrefix(strings.TrimSuffix(value, "*"), false), matchAny
		}
		sub = matchAny
		if subject != "*" {
			sub = stringMatcherPrefix(strings.TrimSuffix(subject, "*"), false)
		}
		return stringMatcherExact(issuer, false), sub
	}
	return stringMatcherExact(issuer, false), stringMatcherExact(subject, false)
}

// claimGenerator: request.auth.audiences (aud), presenter (azp) and
// claims[a][b] as list-or-scalar matchers on the JWT payload.
type claimGenerator struct {
	claim string // "" for request.auth.claims[...]
}

func (claimGenerator) extendedPermission(string, []string, bool) (*rbacpb.Permission, error) {
	return nil, errUnimplemented
}

func (g claimGenerator) extendedPrincipal(key string, values []string, forTCP bool) (*rbacpb.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	claims := []string{g.claim}
	if g.claim == "" {
		var err error
		if claims, err = nestedBracketNames(strings.TrimPrefix(key, config.AttrRequestClaims)); err != nil {
			return nil, err
		}
	}
	return principalMetadata(metadataListValueMatcherForJWTClaims(claims, stringOrMatcher(values))), nil
}

type requestHeaderGenerator struct{ noPermission }

func (requestHeaderGenerator) principal(key, value string, forTCP, _ bool) (*rbacpb.Principal, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	name, err := bracketName(strings.TrimPrefix(key, config.AttrRequestHeader))
	if err != nil {
		return nil, err
	}
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_Header{Header: headerMatcher(name, value, false)}}, nil
}

type hostGenerator struct{ noPrincipal }

func (hostGenerator) permission(key, value string, forTCP bool) (*rbacpb.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return permissionHeader(headerMatcher(hostHeader, value, true)), nil
}

type pathGenerator struct{ noPrincipal }

func (pathGenerator) permission(key, value string, forTCP bool) (*rbacpb.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	if config.ContainsPathTemplate(value) {
		return pathTemplate(value)
	}
	return &rbacpb.Permission{Rule: &rbacpb.Permission_UrlPath{UrlPath: &matcherpb.PathMatcher{
		Rule: &matcherpb.PathMatcher_Path{Path: stringMatcher(value)}}}}, nil
}

type methodGenerator struct{ noPrincipal }

func (methodGenerator) permission(key, value string, forTCP bool) (*rbacpb.Permission, error) {
	if forTCP {
		return nil, httpOnly(key)
	}
	return permissionHeader(headerMatcher(methodHeader, value, false)), nil
}

func bracketName(s string) (string, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return "", fmt.Errorf("expecting format [<NAME>], but found %s", s)
	}
	return strings.TrimPrefix(strings.TrimSuffix(s, "]"), "["), nil
}

// nestedBracketNames reads "[a][b]" as [a b]; "[a.b]" and other shapes as
// one name (extractNameInNestedBrackets).
func nestedBracketNames(s string) ([]string, error) {
	var names []string
	end := func(begin int) int {
		if begin >= len(s) || s[begin] != '[' {
			return -1
		}
		for i := begin + 1; i < len(s); i++ {
			switch s[i] {
			case '[':
				return -1
			case ']':
				return i
			}
		}
		return -1
	}
	for begin := 0; begin < len(s); {
		e := end(begin)
		if e == -1 {
			n, err := bracketName(s)
			if err != nil {
				return nil, err
			}
			return []string{n}, nil
		}
		names = append(names, s[begin+1:e])
		begin = e + 1
	}
	return names, nil
}
