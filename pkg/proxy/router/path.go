package router

import (
	"fmt"
	"regexp"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// pathMatch is a compiled route path specifier.
type pathMatch struct {
	kind          byte // 'p'refix, 'e'xact, 'r'egex, 's'eparated prefix, 'c'onnect
	value         string
	re            *regexp.Regexp
	caseSensitive bool
}

func compilePathMatch(m *route.RouteMatch) (pathMatch, error) {
	pm := pathMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		pm.kind, pm.value = 'p', p.Prefix
	case *route.RouteMatch_Path:
		pm.kind, pm.value = 'e', p.Path
	case *route.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex(), !pm.caseSensitive)
		if err != nil {
			return pm, fmt.Errorf("path: %w", err)
		}
		pm.kind, pm.re = 'r', re
	case *route.RouteMatch_PathSeparatedPrefix:
		pm.kind, pm.value = 's', p.PathSeparatedPrefix
	case *route.RouteMatch_ConnectMatcher_:
		// connect_matcher matches CONNECT requests only, and only it does:
		// a CONNECT has no path for the other specifiers to match
		// (Envoy's ConnectRouteEntryImpl).
		pm.kind = 'c'
	case nil:
		pm.kind, pm.value = 'p', "/"
	default:
		return pm, fmt.Errorf("path: unsupported specifier %T", p)
	}
	if !pm.caseSensitive {
		pm.value = strings.ToLower(pm.value)
	}
	return pm, nil
}

// match reports whether the route's path specifier holds for a request
// with path; connect says the request is a CONNECT.
func (m *pathMatch) match(path string, connect bool) bool {
	if (m.kind == 'c') != connect {
		return false
	}
	if m.kind == 'c' {
		return true
	}
	if m.kind == 'r' {
		return m.re.MatchString(path)
	}
	if !m.caseSensitive {
		path = strings.ToLower(path)
	}
	switch m.kind {
	case 'p':
		return strings.HasPrefix(path, m.value)
	case 'e':
		return path == m.value
	case 's':
		// The prefix must end at a path separator or the end of the path.
		return path == m.value || strings.HasPrefix(path, m.value) && (strings.HasSuffix(m.value, "/") || path[len(m.value)] == '/')
	}
	return false
}

// MatchedPrefix returns what the route's path specifier matched, the part
// a prefix_rewrite replaces: the prefix for prefix routes, the whole path
// for exact and regex routes.
func (m *pathMatch) matchedPrefixLen(path string) int {
	switch m.kind {
	case 'p', 's':
		return len(m.value)
	}
	return len(path)
}
