package jwtauthn

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// filterConfig is a compiled JwtAuthentication (Envoy's FilterConfigImpl
// with its JwksCache): providers with their keys, the rules in order.
type filterConfig struct {
	providers map[string]*provider
	// issuerOrder is the providers by issuer for tokens checked without a
	// provider (allow_missing alone): the first provider (by name) of each
	// issuer, and the first without one for any other issuer
	// (JwksCacheImpl::findByIssuer).
	byIss      map[string]*provider
	anyIssuer  *provider
	rules      []rule
	bypassCORS bool
	// allSanitize are every provider's claim_to_headers headers, removed
	// from every request (JwtClaimToHeader.header_name's contract).
	allSanitize []sanitized
}

// sanitized is a header the filter owns; clearRoute when its provider
// clears the route cache.
type sanitized struct {
	name       string
	clearRoute bool
}

// rule is a RequirementRule: the first whose match holds decides.
type rule struct {
	m ruleMatch
	v verifier
}

// compileConfig compiles the listener-level config.
func compileConfig(a *anypb.Any) (*filterConfig, error) {
	var c jwtv3.JwtAuthentication
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, err
	}
	if err := checkFields(&c); err != nil {
		return nil, err // first, so that the field not honoured is named
	}
	if err := c.ValidateAll(); err != nil {
		return nil, err
	}
	fc := &filterConfig{providers: map[string]*provider{}, byIss: map[string]*provider{}, bypassCORS: c.BypassCorsPreflight}
	for _, name := range sortedKeys(c.Providers) {
		p, err := compileProvider(name, c.Providers[name])
		if err != nil {
			return nil, fmt.Errorf("providers[%q]: %w", name, err)
		}
		fc.providers[name] = p
		if p.issuer == "" {
			if fc.anyIssuer == nil {
				fc.anyIssuer = p
			}
		} else if fc.byIss[p.issuer] == nil {
			fc.byIss[p.issuer] = p
		}
		for _, ch := range p.claimHeaders {
			fc.allSanitize = append(fc.allSanitize, sanitized{name: ch.header, clearRoute: p.clearRouteCache})
		}
	}
	for i, r := range c.Rules {
		m, err := compileRuleMatch(r.Match)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].match: %w", i, err)
		}
		var v verifier = allowAll{}
		if req := r.GetRequires(); req != nil {
			if v, err = fc.compileRequirement(req); err != nil {
				return nil, fmt.Errorf("rules[%d].requires: %w", i, err)
			}
		}
		fc.rules = append(fc.rules, rule{m: m, v: v})
	}
	return fc, nil
}

// byIssuer is JwksCacheImpl::findByIssuer.
func (fc *filterConfig) byIssuer(iss string) *provider {
	if p := fc.byIss[iss]; p != nil {
		return p
	}
	if iss != "" {
		return fc.anyIssuer
	}
	return nil
}

// compileRequirement builds the verifier tree (Verifier::create /
// innerCreate in verifier.cc).
func (fc *filterConfig) compileRequirement(r *jwtv3.JwtRequirement) (verifier, error) {
	named := func(name string, aud []string) (verifier, error) {
		p := fc.providers[name]
		if p == nil {
			return nil, fmt.Errorf("Required provider ['%s'] is not configured.", name)
		}
		v := &providerVerifier{p: p}
		if len(aud) > 0 {
			v.aud = newAudiences(aud)
		}
		return v, nil
	}
	switch t := r.RequiresType.(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		return named(t.ProviderName, nil)
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		return named(t.ProviderAndAudiences.ProviderName, t.ProviderAndAudiences.Audiences)
	case *jwtv3.JwtRequirement_RequiresAny:
		return fc.compileAny(t.RequiresAny.Requirements)
	case *jwtv3.JwtRequirement_RequiresAll:
		v := &allVerifier{}
		for i, c := range t.RequiresAll.Requirements {
			cv, err := fc.compileRequirement(c)
			if err != nil {
				return nil, fmt.Errorf("requires_all[%d]: %w", i, err)
			}
			v.children = append(v.children, cv)
		}
		return v, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return fc.allowVerifier(false), nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return fc.allowVerifier(true), nil
	case nil:
		return allowAll{}, nil
	}
	return nil, fmt.Errorf("%T: not supported", r.RequiresType)
}

// compileAny is AnyVerifierImpl's constructor: allow_missing and
// allow_missing_or_failed in the list are flags, unless they are all it
// holds.
func (fc *filterConfig) compileAny(reqs []*jwtv3.JwtRequirement) (verifier, error) {
	v := &anyVerifier{}
	for i, c := range reqs {
		switch c.RequiresType.(type) {
		case *jwtv3.JwtRequirement_AllowMissingOrFailed:
			v.allowFails = true
		case *jwtv3.JwtRequirement_AllowMissing:
			v.allowMissing = true
		default:
			cv, err := fc.compileRequirement(c)
			if err != nil {
				return nil, fmt.Errorf("requires_any[%d]: %w", i, err)
			}
			v.children = append(v.children, cv)
		}
	}
	if len(v.children) == 0 && (v.allowFails || v.allowMissing) {
		v.children = append(v.children, fc.allowVerifier(v.allowFails))
	}
	return v, nil
}

func (fc *filterConfig) allowVerifier(allowFail bool) verifier {
	ps := make([]*provider, 0, len(fc.providers))
	for _, name := range sortedKeys(fc.providers) {
		ps = append(ps, fc.providers[name])
	}
	return &allowVerifier{all: fc, ext: newExtractor(ps), allowFail: allowFail}
}

// ruleMatch is a rule's RouteMatch as Envoy's jwt_authn matcher.cc reads
// it: the path (prefix, exact path, path_separated_prefix or safe_regex,
// case_sensitive) and the headers.
type ruleMatch struct {
	kind          byte // 'p' prefix, 'e' exact path, 's' separated prefix, 'r' regex
	value         string
	caseSensitive bool
	re            *regexp.Regexp
	headers       []router.HeaderMatcher
}

func compileRuleMatch(m *route.RouteMatch) (ruleMatch, error) {
	rm := ruleMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().Value}
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		rm.kind, rm.value = 'p', p.Prefix
	case *route.RouteMatch_Path:
		rm.kind, rm.value = 'e', p.Path
	case *route.RouteMatch_PathSeparatedPrefix:
		rm.kind, rm.value = 's', p.PathSeparatedPrefix
	case *route.RouteMatch_SafeRegex:
		re, err := strmatch.CompileRegex(p.SafeRegex.GetRegex(), false)
		if err != nil {
			return rm, fmt.Errorf("safe_regex: %w", err)
		}
		rm.kind, rm.re = 'r', re
	default:
		return rm, fmt.Errorf("%T: not supported", p)
	}
	if !rm.caseSensitive {
		rm.value = strings.ToLower(rm.value)
	}
	for i, h := range m.GetHeaders() {
		hm, err := router.CompileHeaderMatcher(h)
		if err != nil {
			return rm, fmt.Errorf("headers[%d]: %w", i, err)
		}
		rm.headers = append(rm.headers, hm)
	}
	return rm, nil
}

// matches reports whether the rule applies to r (path without query,
// after the connection manager's normalization).
func (m *ruleMatch) matches(r *http.Request) bool {
	path := router.RequestPath(r)
	switch m.kind {
	case 'p':
		if !hasPrefixFold(path, m.value, m.caseSensitive) {
			return false
		}
	case 'e':
		if !(m.caseSensitive && path == m.value || !m.caseSensitive && strings.EqualFold(path, m.value)) {
			return false
		}
	case 's':
		if !hasPrefixFold(path, m.value, m.caseSensitive) || len(path) > len(m.value) && path[len(m.value)] != '/' {
			return false
		}
	case 'r':
		if !m.re.MatchString(path) {
			return false
		}
	}
	for i := range m.headers {
		if !m.headers[i].MatchRequest(r) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string, caseSensitive bool) bool {
	if caseSensitive {
		return strings.HasPrefix(s, prefix)
	}
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
