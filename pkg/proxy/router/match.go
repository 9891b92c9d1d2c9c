package router

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// stringMatch is a compiled Envoy StringMatcher.
type stringMatch struct {
	kind       byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

func compileStringMatch(m *matcher.StringMatcher) (stringMatch, error) {
	sm := stringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		sm.kind, sm.value = 'e', p.Exact
	case *matcher.StringMatcher_Prefix:
		sm.kind, sm.value = 'p', p.Prefix
	case *matcher.StringMatcher_Suffix:
		sm.kind, sm.value = 's', p.Suffix
	case *matcher.StringMatcher_Contains:
		sm.kind, sm.value = 'c', p.Contains
	case *matcher.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex(), false)
		if err != nil {
			return sm, err
		}
		sm.kind, sm.re = 'r', re
	default:
		return sm, fmt.Errorf("unsupported string matcher %T", p)
	}
	if sm.ignoreCase {
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// compileRegex compiles an RE2 pattern that must match the whole input, as
// Envoy's safe_regex does.
func compileRegex(pattern string, ignoreCase bool) (*regexp.Regexp, error) {
	prefix := ""
	if ignoreCase {
		prefix = "(?i)"
	}
	re, err := regexp.Compile(prefix + "^(?:" + pattern + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return re, nil
}

func (m *stringMatch) match(s string) bool {
	if m.ignoreCase && m.kind != 'r' {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case 'e':
		return s == m.value
	case 'p':
		return strings.HasPrefix(s, m.value)
	case 's':
		return strings.HasSuffix(s, m.value)
	case 'c':
		return strings.Contains(s, m.value)
	case 'r':
		return m.re.MatchString(s)
	}
	return false
}

// headerMatch is a compiled HeaderMatcher.
type headerMatch struct {
	name    string // lower case; ":method" and friends are pseudo-headers
	present bool   // match on presence only
	str     stringMatch
	invert  bool
}

func compileHeaderMatch(h *route.HeaderMatcher) (headerMatch, error) {
	hm := headerMatch{name: strings.ToLower(h.Name), invert: h.InvertMatch}
	switch s := h.HeaderMatchSpecifier.(type) {
	case *route.HeaderMatcher_StringMatch:
		sm, err := compileStringMatch(s.StringMatch)
		if err != nil {
			return hm, fmt.Errorf("header %q: %w", h.Name, err)
		}
		hm.str = sm
	case *route.HeaderMatcher_PresentMatch:
		hm.present = true
		if !s.PresentMatch {
			hm.invert = !hm.invert
		}
	case *route.HeaderMatcher_ExactMatch:
		hm.str = stringMatch{kind: 'e', value: s.ExactMatch}
	case *route.HeaderMatcher_PrefixMatch:
		hm.str = stringMatch{kind: 'p', value: s.PrefixMatch}
	case *route.HeaderMatcher_SuffixMatch:
		hm.str = stringMatch{kind: 's', value: s.SuffixMatch}
	case *route.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch.GetRegex(), false)
		if err != nil {
			return hm, fmt.Errorf("header %q: %w", h.Name, err)
		}
		hm.str = stringMatch{kind: 'r', re: re}
	case nil:
		hm.present = true
	default:
		return hm, fmt.Errorf("header %q: unsupported matcher %T", h.Name, s)
	}
	return hm, nil
}

// headerValue reads a header or pseudo-header from r. Several values of
// one header are joined with "," as Envoy joins them for matching.
func headerValue(r *http.Request, name string) (string, bool) {
	switch name {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return r.Host, true
	case ":path":
		return r.RequestURI, true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vals := r.Header.Values(name)
	switch len(vals) {
	case 0:
		return "", false
	case 1:
		return vals[0], true
	}
	return strings.Join(vals, ","), true
}

func (h *headerMatch) match(r *http.Request) bool {
	v, ok := headerValue(r, h.name)
	var res bool
	if h.present {
		res = ok
	} else {
		res = ok && h.str.match(v)
	}
	return res != h.invert
}

// queryMatch is a compiled QueryParameterMatcher.
type queryMatch struct {
	name    string
	present bool
	str     stringMatch
}

func compileQueryMatch(q *route.QueryParameterMatcher) (queryMatch, error) {
	qm := queryMatch{name: q.Name}
	switch s := q.QueryParameterMatchSpecifier.(type) {
	case *route.QueryParameterMatcher_StringMatch:
		sm, err := compileStringMatch(s.StringMatch)
		if err != nil {
			return qm, fmt.Errorf("query parameter %q: %w", q.Name, err)
		}
		qm.str = sm
	default:
		qm.present = true
	}
	return qm, nil
}

func (q *queryMatch) match(query url.Values) bool {
	vals, ok := query[q.name]
	if !ok {
		return false
	}
	if q.present {
		return true
	}
	return len(vals) > 0 && q.str.match(vals[0])
}
