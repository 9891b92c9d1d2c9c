package rbac

import (
	"fmt"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// headerMatch is a compiled HeaderMatcher, as Envoy's
// Http::HeaderUtility::HeaderData matches request headers: the values of
// the header joined with ","; a missing header matches only inverted
// (unless treat_missing_header_as_empty); present_match false matches an
// absent header.
type headerMatch struct {
	// key is the canonical Go header key, or a pseudo-header (":method",
	// ":authority", ":path", ":scheme").
	key string
	// present: match on presence; presentWant is present_match's value.
	present, presentWant bool
	str                  strmatch.String
	hasRange             bool
	lo, hi               int64
	invert               bool
	missingAsEmpty       bool
}

// headerFields are the HeaderMatcher fields honoured (see xdsfields).
func compileHeaderNode(h *route.HeaderMatcher, where string) (node, error) {
	hm := &headerMatch{invert: h.InvertMatch, missingAsEmpty: h.TreatMissingHeaderAsEmpty}
	name := strings.ToLower(h.Name)
	switch {
	case name == ":method", name == ":authority", name == ":path", name == ":scheme":
	case strings.HasPrefix(name, ":"):
		return node{}, fmt.Errorf("%s.name %q: pseudo-header not supported", where, h.Name)
	}
	hm.key = httpfilter.HeaderKey(h.Name) // "host" is HTTP/2's :authority
	desc := fmt.Sprintf("header %s", name)
	var sm *matcher.StringMatcher
	switch s := h.HeaderMatchSpecifier.(type) {
	case *route.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	case *route.HeaderMatcher_ExactMatch:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s.ExactMatch}}
	case *route.HeaderMatcher_PrefixMatch:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s.PrefixMatch}}
	case *route.HeaderMatcher_SuffixMatch:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: s.SuffixMatch}}
	case *route.HeaderMatcher_ContainsMatch:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Contains{Contains: s.ContainsMatch}}
	case *route.HeaderMatcher_SafeRegexMatch:
		sm = &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}
	case *route.HeaderMatcher_PresentMatch:
		hm.present, hm.presentWant = true, s.PresentMatch
		desc += map[bool]string{true: " present", false: " absent"}[s.PresentMatch]
	case *route.HeaderMatcher_RangeMatch:
		hm.hasRange, hm.lo, hm.hi = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
		desc += fmt.Sprintf(" in [%d, %d)", hm.lo, hm.hi)
	case nil:
		// No specifier: Envoy matches on presence.
		hm.present, hm.presentWant = true, true
		desc += " present"
	default:
		return node{}, fmt.Errorf("%s: %T: not supported", where, s)
	}
	if sm != nil {
		c, err := compileString(sm, where)
		if err != nil {
			return node{}, err
		}
		hm.str = c
		desc += " " + describeString(sm)
	}
	if hm.invert {
		desc = "not (" + desc + ")"
	}
	return node{kind: kHeader, hdr: hm, desc: desc}, nil
}

// value reads the header (or pseudo-header) from the request; several
// values are joined with "," (Envoy's getAllOfHeaderAsString). A
// connection has no headers (the network filter).
func (h *headerMatch) value(in *Input) (string, bool) {
	r := in.R
	if r == nil {
		return "", false
	}
	return httpfilter.HeaderValue(r, h.key, in.fullPath())
}

func (h *headerMatch) match(in *Input) bool {
	v, ok := h.value(in)
	if h.present {
		return (ok == h.presentWant) != h.invert
	}
	if !ok && !h.missingAsEmpty {
		return h.invert
	}
	var res bool
	if h.hasRange {
		n, err := strconv.ParseInt(v, 10, 64)
		res = err == nil && h.lo <= n && n < h.hi
	} else {
		res = h.str.Match(v)
	}
	return res != h.invert
}
