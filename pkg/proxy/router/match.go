package router

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// stringMatch is a compiled Envoy StringMatcher (see strmatch).
type stringMatch = strmatch.String

func compileStringMatch(m *matcher.StringMatcher) (stringMatch, error) { return strmatch.Compile(m) }

func compileRegex(pattern string, ignoreCase bool) (*regexp.Regexp, error) {
	return strmatch.CompileRegex(pattern, ignoreCase)
}

// legacyMatch compiles the deprecated header matcher fields as the
// StringMatcher they stand for.
func legacyMatch(m *matcher.StringMatcher) stringMatch {
	sm, _ := strmatch.Compile(m)
	return sm
}

// headerMatch is a compiled HeaderMatcher.
type headerMatch struct {
	name    string // httpfilter.HeaderKey: a pseudo-header or a canonical key
	present bool   // match on presence only
	str     stringMatch
	invert  bool
}

func compileHeaderMatch(h *route.HeaderMatcher) (headerMatch, error) {
	hm := headerMatch{name: httpfilter.HeaderKey(h.Name), invert: h.InvertMatch}
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
		hm.str = legacyMatch(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s.ExactMatch}})
	case *route.HeaderMatcher_PrefixMatch:
		hm.str = legacyMatch(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s.PrefixMatch}})
	case *route.HeaderMatcher_SuffixMatch:
		hm.str = legacyMatch(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: s.SuffixMatch}})
	case *route.HeaderMatcher_SafeRegexMatch:
		sm, err := compileStringMatch(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}})
		if err != nil {
			return hm, fmt.Errorf("header %q: %w", h.Name, err)
		}
		hm.str = sm
	case nil:
		hm.present = true
	default:
		return hm, fmt.Errorf("header %q: unsupported matcher %T", h.Name, s)
	}
	return hm, nil
}

func (h *headerMatch) match(r *http.Request) bool {
	v, ok := httpfilter.HeaderValue(r, h.name, r.RequestURI)
	var res bool
	if h.present {
		res = ok
	} else {
		res = ok && h.str.Match(v)
	}
	return res != h.invert
}

// queryMatch is a compiled QueryParameterMatcher.
type queryMatch struct {
	name    string
	present bool
	absent  bool // present_match false: the parameter must be absent
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
	case *route.QueryParameterMatcher_PresentMatch:
		// present_match false matches requests without the parameter, as
		// current Envoy does (ConfigUtility::QueryParameterMatcher::matches
		// in source/common/router/config_utility.cc, runtime guard
		// enable_new_query_param_present_match_behavior, on by default).
		qm.present, qm.absent = s.PresentMatch, !s.PresentMatch
	default:
		qm.present = true
	}
	return qm, nil
}

func (q *queryMatch) match(query url.Values) bool {
	vals, ok := query[q.name]
	if q.absent || !ok {
		return q.absent && !ok
	}
	if q.present {
		return true
	}
	return len(vals) > 0 && q.str.Match(vals[0])
}

// HeaderMatcher is a compiled Envoy HeaderMatcher, for filters that match
// headers outside route matching (the router filter's retriable_headers
// and retriable_request_headers).
type HeaderMatcher struct{ m headerMatch }

// CompileHeaderMatcher compiles a HeaderMatcher.
func CompileHeaderMatcher(h *route.HeaderMatcher) (HeaderMatcher, error) {
	m, err := compileHeaderMatch(h)
	return HeaderMatcher{m}, err
}

// MatchRequest reports whether r's headers (and pseudo-headers) match.
func (h *HeaderMatcher) MatchRequest(r *http.Request) bool { return h.m.match(r) }

// MatchResponse reports whether a response with this status and these
// headers matches (":status" is the status).
func (h *HeaderMatcher) MatchResponse(status int, hdr http.Header) bool {
	m := &h.m
	var v string
	var ok bool
	if m.name == ":status" {
		v, ok = strconv.Itoa(status), true
	} else if vals := hdr[m.name]; len(vals) > 0 { // m.name is canonical (HeaderKey)
		v, ok = strings.Join(vals, ","), true
	}
	res := ok
	if !m.present {
		res = ok && m.str.Match(v)
	}
	return res != m.invert
}
