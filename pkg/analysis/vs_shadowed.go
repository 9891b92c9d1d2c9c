package analysis

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// sluice's own check (issue 13): HTTP routes an earlier route shadows.
func init() {
	register(&Analyzer{
		Name:        "sluice.ShadowedRouteAnalyzer",
		Description: "Checks for HTTP routes that can never match because an earlier route of the VirtualService matches every request they match.",
		Codes:       []string{"SLU0001"},
		run:         analyzeShadowedRoutes,
	})
}

// analyzeShadowedRoutes reports an HTTP route when an earlier route
// provably matches every request it matches: Istio (and Envoy) take the
// first route whose match holds (VirtualService http: "the first rule
// matching an incoming request is used"). It is conservative: a match it
// cannot compare (regex against prefix, for one) shadows nothing. Routes
// Istio's own checks already report are left to them: IST0130 (after a
// route without match, or every match repeated) and IST0131 on every
// match (a repeated match, a prefix an earlier prefix covers).
func analyzeShadowedRoutes(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		routes := o.Spec.(*networking.VirtualService).GetHttp()
		istio := map[string]int{} // route name: unused (-1) or matches found ineffective
		unreachableHTTPRules(routes, func(rule, _ string) { istio[rule] = -1 }, func(rule, _, _ string) {
			if istio[rule] >= 0 {
				istio[rule]++
			}
		})
		for j := 1; j < len(routes); j++ {
			if n := istio[httpRouteName(routes[j], j)]; n < 0 || n > 0 && n >= len(routes[j].GetMatch()) {
				continue
			}
			for i := 0; i < j; i++ {
				if routeCovers(routes[i], routes[j]) {
					c.report(ShadowedRoute, o, "", routeLabel(routes[j], j), routeLabel(routes[i], i))
					break
				}
			}
		}
	}
}

// routeLabel names an HTTP route in messages: http[i], with its name.
func routeLabel(r *networking.HTTPRoute, i int) string {
	if r.GetName() != "" {
		return sprintf("http[%d] (%q)", i, r.GetName())
	}
	return sprintf("http[%d]", i)
}

// routeCovers reports whether every request later matches, earlier
// matches too. A delegating route covers nothing: requests its delegate
// does not match go on to the next routes.
func routeCovers(earlier, later *networking.HTTPRoute) bool {
	if earlier == nil || later == nil || earlier.GetDelegate() != nil || slices.Contains(earlier.GetMatch(), nil) {
		return false
	}
	if len(earlier.GetMatch()) == 0 {
		return true
	}
	if len(later.GetMatch()) == 0 {
		return slices.ContainsFunc(earlier.GetMatch(), matchesAll)
	}
	for _, lm := range later.GetMatch() {
		if !slices.ContainsFunc(earlier.GetMatch(), func(em *networking.HTTPMatchRequest) bool { return matchCovers(em, lm) }) {
			return false
		}
	}
	return true
}

// matchesAll reports whether a match has no condition at all.
func matchesAll(m *networking.HTTPMatchRequest) bool {
	return matchCovers(m, &networking.HTTPMatchRequest{})
}

// matchCovers reports whether every request l matches, e matches: each
// condition of e is implied by one of l.
func matchCovers(e, l *networking.HTTPMatchRequest) bool {
	if !uriCovers(e, l) || !stringMatchCovers(e.GetScheme(), l.GetScheme(), false) ||
		!stringMatchCovers(e.GetMethod(), l.GetMethod(), false) || !stringMatchCovers(e.GetAuthority(), l.GetAuthority(), false) {
		return false
	}
	if !stringMapCovers(e.GetHeaders(), l.GetHeaders()) || !stringMapCovers(e.GetQueryParams(), l.GetQueryParams()) {
		return false
	}
	for k, v := range e.GetWithoutHeaders() {
		if !proto.Equal(v, l.GetWithoutHeaders()[k]) {
			return false
		}
	}
	if e.GetPort() != 0 && e.GetPort() != l.GetPort() {
		return false
	}
	if e.GetSourceNamespace() != "" && e.GetSourceNamespace() != l.GetSourceNamespace() {
		return false
	}
	for k, v := range e.GetSourceLabels() {
		if lv, ok := l.GetSourceLabels()[k]; !ok || lv != v {
			return false
		}
	}
	if len(e.GetGateways()) > 0 {
		if len(l.GetGateways()) == 0 {
			return false
		}
		for _, g := range l.GetGateways() {
			if !slices.Contains(e.GetGateways(), g) {
				return false
			}
		}
	}
	return true
}

func uriCovers(e, l *networking.HTTPMatchRequest) bool {
	if e.GetUri() == nil {
		return true
	}
	switch {
	case e.GetIgnoreUriCase() == l.GetIgnoreUriCase():
		return stringMatchCovers(e.GetUri(), l.GetUri(), false)
	case e.GetIgnoreUriCase():
		// A case-insensitive match covers what its lower-case form covers.
		return stringMatchCovers(e.GetUri(), l.GetUri(), true)
	}
	return false
}

// stringMatchCovers reports whether every value l matches, e matches. A
// nil e matches anything; a nil l matches anything, so only a nil e
// covers it. fold compares case-insensitively.
func stringMatchCovers(e, l *networking.StringMatch, fold bool) bool {
	if e == nil || e.GetMatchType() == nil {
		return true
	}
	if l == nil || l.GetMatchType() == nil {
		return false
	}
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch em := e.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		x, ok := l.GetMatchType().(*networking.StringMatch_Exact)
		return ok && norm(x.Exact) == norm(em.Exact)
	case *networking.StringMatch_Prefix:
		switch x := l.GetMatchType().(type) {
		case *networking.StringMatch_Exact:
			return strings.HasPrefix(norm(x.Exact), norm(em.Prefix))
		case *networking.StringMatch_Prefix:
			return strings.HasPrefix(norm(x.Prefix), norm(em.Prefix))
		}
	case *networking.StringMatch_Regex:
		x, ok := l.GetMatchType().(*networking.StringMatch_Regex)
		return ok && !fold && x.Regex == em.Regex
	}
	return false
}

// stringMapCovers: every header (or query parameter) e requires, l
// requires at least as narrowly. An empty StringMatch in e only asks for
// presence, which any condition of l on the key implies.
func stringMapCovers(e, l map[string]*networking.StringMatch) bool {
	for k, em := range e {
		lm, ok := l[k]
		if !ok {
			return false
		}
		if em.GetMatchType() == nil {
			continue
		}
		if !stringMatchCovers(em, lm, false) {
			return false
		}
	}
	return true
}
