// Package strmatch is Envoy's StringMatcher (envoy.type.matcher.v3),
// compiled once and matched allocation-free: exact, prefix, suffix,
// contains and RE2 safe_regex (whole-input), optionally ignoring case. The
// router's header and query matchers and the CORS filter's origins use it.
package strmatch

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// String is a compiled Envoy StringMatcher.
type String struct {
	kind  byte // 'e'xact, 'p'refix, 's'uffix, 'c'ontains, 'r'egex
	value string
	re    *regexp.Regexp
	// need are literals every match of re contains: an input lacking one
	// is rejected without running the regex (Istio's principal regexes,
	// "spiffe://.+/ns/foo/(.+/|)sa/bar(/.+)?", mostly do not match).
	need       []string
	ignoreCase bool
	// raw is the value as configured, for ignore_case exact, prefix and
	// suffix, compared ASCII-case-insensitively as Envoy does
	// (absl::EqualsIgnoreCase) without lowering the input.
	raw string
}

// Compile compiles a StringMatcher.
func Compile(m *matcher.StringMatcher) (String, error) {
	sm := String{ignoreCase: m.GetIgnoreCase()}
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
		re, err := CompileRegex(p.SafeRegex.GetRegex(), false)
		if err != nil {
			return sm, err
		}
		sm.kind, sm.re, sm.need = 'r', re, requiredLiterals(p.SafeRegex.GetRegex())
	default:
		return sm, fmt.Errorf("unsupported string matcher %T", p)
	}
	if sm.ignoreCase {
		sm.raw = sm.value
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// compileRegex compiles an RE2 pattern that must match the whole input, as
// Envoy's safe_regex does.
func CompileRegex(pattern string, ignoreCase bool) (*regexp.Regexp, error) {
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

// Match reports whether s matches.
func (m *String) Match(s string) bool {
	if m.ignoreCase {
		switch m.kind {
		case 'e':
			return asciiEqualFold(s, m.raw)
		case 'p':
			return len(s) >= len(m.raw) && asciiEqualFold(s[:len(m.raw)], m.raw)
		case 's':
			return len(s) >= len(m.raw) && asciiEqualFold(s[len(s)-len(m.raw):], m.raw)
		}
	}
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
		for _, lit := range m.need {
			if !strings.Contains(s, lit) {
				return false
			}
		}
		return m.re.MatchString(s)
	}
	return false
}

// requiredLiterals are the case-sensitive literal pieces of a regex's
// top-level concatenation: every match contains each of them.
func requiredLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	parts := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		parts = re.Sub
	}
	var out []string
	for _, p := range parts {
		if p.Op == syntax.OpLiteral && p.Flags&syntax.FoldCase == 0 && len(p.Rune) > 0 {
			out = append(out, string(p.Rune))
		}
	}
	return out
}

// asciiEqualFold reports whether a and b are equal ignoring ASCII case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
