package strmatch

import (
	"slices"
	"testing"

	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func re(p string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: p}}}
}

// TestRegexRequiredLiterals: the literal prefilter never changes a
// regex's answer, and finds Istio's principal regex's literals.
func TestRegexRequiredLiterals(t *testing.T) {
	if got := requiredLiterals(`spiffe://.+/ns/foo/(.+/|)sa/bar(/.+)?`); !slices.Equal(got, []string{"spiffe://", "/ns/foo/", "sa/bar"}) {
		t.Errorf("literals %q", got)
	}
	for _, c := range []struct {
		pattern, in string
		want        bool
	}{
		{`spiffe://.+/ns/foo/(.+/|)sa/bar(/.+)?`, "spiffe://cluster.local/ns/foo/sa/bar", true},
		{`spiffe://.+/ns/foo/(.+/|)sa/bar(/.+)?`, "spiffe://cluster.local/ns/foo/sa/baz", false},
		{`.*/ns/foo/.*`, "spiffe://td/ns/foo/sa/x", true},
		{`.*/ns/foo/.*`, "spiffe://td/ns/fo/sa/x", false},
		{`(?i)ABC.*`, "abcd", true},
		{`a|b`, "b", true},
		{`x+y`, "xxy", true},
		{`.+`, "", false},
	} {
		m, err := Compile(re(c.pattern))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(c.in); got != c.want {
			t.Errorf("%s on %q: %v", c.pattern, c.in, got)
		}
	}
}

// TestIgnoreCaseASCII: ignore_case exact/prefix/suffix compare ASCII
// letters without case, as Envoy does.
func TestIgnoreCaseASCII(t *testing.T) {
	for _, c := range []struct {
		m    *matcher.StringMatcher
		in   string
		want bool
	}{
		{&matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Exact{Exact: "Web.Example.com"}}, "WEB.example.COM", true},
		{&matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Exact{Exact: "web"}}, "webs", false},
		{&matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "Pre."}}, "pRE.x", true},
		{&matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Suffix{Suffix: ".Com"}}, "a.cOM", true},
		{&matcher.StringMatcher{IgnoreCase: true, MatchPattern: &matcher.StringMatcher_Suffix{Suffix: ".com"}}, "om", false},
	} {
		m, err := Compile(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(c.in); got != c.want {
			t.Errorf("%v on %q: %v", c.m, c.in, got)
		}
	}
}
