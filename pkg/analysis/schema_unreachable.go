package analysis

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Ported from istio/istio pkg/config/validation/validation.go
// (analyzeUnreachableHTTPRules, analyzeUnreachableTCPRules,
// analyzeUnreachableTLSRules, genMatchHTTPRoutes, coveredValidation).

type reportUnused func(rule, reason string)
type reportIneffective func(rule, match, dup string)

// unreachableHTTPRules reports http rules after a match-less rule, rules
// whose every match an earlier rule has, matches an earlier rule repeats,
// and prefix matches an earlier prefix match covers.
func unreachableHTTPRules(routes []*networking.HTTPRoute, unused reportUnused, ineffective reportIneffective) {
	seen := map[string]int{}
	emptyAt := -1
	var prefixes []*prefixMatch
	for n, r := range routes {
		if r == nil {
			continue
		}
		if len(r.Match) == 0 {
			if emptyAt >= 0 {
				unused(httpRouteName(r, n), "only the last rule can have no matches")
			}
			emptyAt = n
			continue
		}
		dups := 0
		for m, match := range r.Match {
			if emptyAt >= 0 {
				unused(httpRouteName(r, n), "route without matches defined before")
				continue
			}
			key := matchJSON(match)
			if d, ok := seen[key]; ok {
				ineffective(httpRouteName(r, n), httpMatchName(match, m), httpRouteName(routes[d], d))
				dups++
				continue
			}
			seen[key] = n
			if p := newPrefixMatch(r, match, n, m); p != nil {
				prefixes = append(prefixes, p)
			}
		}
		if dups == len(r.Match) {
			unused(httpRouteName(r, n), "all matches used by prior rules")
		}
	}
	for i, a := range prefixes {
		for _, b := range prefixes[i+1:] {
			if b.prefix != a.prefix && a.covers(b) {
				ineffective(b.route, b.match+" of prefix "+b.prefix, a.match+" of prefix "+a.prefix+" on "+a.route)
			}
		}
	}
}

// ruleMatches is a tcp or tls rule's matches, as JSON keys.
type ruleMatches struct {
	matches []string
	present bool
}

// l4Matches is a tcp or tls rule list's matches; matches reads one
// rule's (TCPRoute.Match, TLSRoute.Match).
func l4Matches[R interface{ comparable }, M proto.Message](routes []R, matches func(R) []M) []*ruleMatches {
	var zero R
	out := make([]*ruleMatches, len(routes))
	for i, r := range routes {
		if r != zero {
			out[i] = &ruleMatches{present: true}
			for _, m := range matches(r) {
				out[i].matches = append(out[i].matches, matchJSON(m))
			}
		}
	}
	return out
}

// unreachableRules is the tcp and tls version: rules and matches are
// named by index only.
func unreachableRules(rules []*ruleMatches, unused reportUnused, ineffective reportIneffective) {
	seen := map[string]int{}
	emptyAt := -1
	for n, r := range rules {
		if r == nil || !r.present {
			continue
		}
		name := fmt.Sprintf("#%d", n)
		if len(r.matches) == 0 {
			if emptyAt >= 0 {
				unused(name, "only the last rule can have no matches")
			}
			emptyAt = n
			continue
		}
		dups := 0
		for m, key := range r.matches {
			if emptyAt >= 0 {
				unused(name, "route without matches defined before")
				continue
			}
			if d, ok := seen[key]; ok {
				ineffective(name, fmt.Sprintf("#%d", m), fmt.Sprintf("#%d", d))
				dups++
			} else {
				seen[key] = n
			}
		}
		if dups == len(r.matches) {
			unused(name, "all matches used by prior rules")
		}
	}
}

// matchJSON serializes a match for comparison, without an http match's
// name (asJSON).
func matchJSON(m proto.Message) string {
	if hm, ok := m.(*networking.HTTPMatchRequest); ok && hm != nil && hm.Name != "" {
		c := proto.Clone(hm).(*networking.HTTPMatchRequest)
		c.Name = ""
		m = c
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func httpRouteName(r *networking.HTTPRoute, n int) string {
	if r.Name != "" {
		return fmt.Sprintf("%q", r.Name)
	}
	return fmt.Sprintf("#%d", n)
}

func httpMatchName(m *networking.HTTPMatchRequest, n int) string {
	if m != nil && m.Name != "" {
		return fmt.Sprintf("%q", m.Name)
	}
	return fmt.Sprintf("#%d", n)
}

// prefixMatch is an http match on a URI prefix, with the other fields the
// overlap check compares (OverlappingMatchValidationForHTTPRoute).
type prefixMatch struct {
	route, match, prefix string
	port                 uint32
	method, authority    string
	headers, query, not  map[string]string
}

func newPrefixMatch(r *networking.HTTPRoute, m *networking.HTTPMatchRequest, rn, mn int) *prefixMatch {
	if m == nil || m.Uri == nil || m.Uri.GetPrefix() == "" {
		return nil
	}
	p := &prefixMatch{
		route: httpRouteName(r, rn), match: httpMatchName(m, mn), prefix: m.Uri.GetPrefix(), port: m.Port,
		method:    exactOrPrefix(m.Method),
		authority: exactOrPrefix(m.Authority),
		headers:   stringMatches(m.Headers), query: stringMatches(m.QueryParams), not: stringMatches(m.WithoutHeaders),
	}
	if p.method == "" {
		p.method = "exact:GET" // no method: GET, as Istio assumes
	}
	return p
}

func exactOrPrefix(s *networking.StringMatch) string {
	if e := s.GetExact(); e != "" {
		return "exact:" + e
	}
	if p := s.GetPrefix(); p != "" {
		return "prefix:" + p
	}
	return ""
}

func stringMatches(m map[string]*networking.StringMatch) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = exactOrPrefix(v)
	}
	return out
}

// covers reports whether a, an earlier match, takes every request b
// would (coveredValidation).
func (a *prefixMatch) covers(b *prefixMatch) bool {
	if !strings.HasPrefix(b.prefix, a.prefix) || b.port != a.port {
		return false
	}
	if a.method != b.method && !strings.HasPrefix(a.method, b.method) {
		return false
	}
	if a.authority != b.authority && !strings.HasPrefix(a.authority, b.authority) {
		return false
	}
	return mapCovers(a.headers, b.headers) && mapCovers(a.query, b.query) && mapCovers(a.not, b.not)
}

func mapCovers(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || av != bv && !strings.HasPrefix(av, bv) {
			return false
		}
	}
	return true
}
