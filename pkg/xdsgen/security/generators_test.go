package security

import (
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// TestRequestPrincipal is Istio's authz/model generator_test.go
// TestRequestPrincipal: iss and sub matchers of each requestPrincipals
// form.
func TestRequestPrincipal(t *testing.T) {
	anyValue := stringMatcherRegex(".+")
	cases := []struct {
		in       string
		iss, sub *matcherpb.StringMatcher
	}{
		{"*", anyValue, anyValue},
		{"foo*", stringMatcherPrefix("foo", false), anyValue},
		{"foo/*", stringMatcherExact("foo", false), anyValue},
		{"foo/bar*", stringMatcherExact("foo", false), stringMatcherPrefix("bar", false)},
		{"*foo", anyValue, stringMatcherSuffix("foo", false)},
		{"*/foo", anyValue, stringMatcherExact("foo", false)},
		{"*bar/foo", stringMatcherSuffix("bar", false), stringMatcherExact("foo", false)},
		{"foo/bar", stringMatcherExact("foo", false), stringMatcherExact("bar", false)},
		{"https://example.com/path/sub", stringMatcherExact("https://example.com/path", false), stringMatcherExact("sub", false)},
	}
	for _, tc := range cases {
		got, err := requestPrincipalGenerator{}.extendedPrincipal("request.auth.principal", []string{tc.in}, false)
		if err != nil {
			t.Fatal(err)
		}
		want := principalAnd([]*rbacpb.Principal{
			principalMetadata(metadataStringMatcherForJWTClaim("iss", tc.iss)),
			principalMetadata(metadataStringMatcherForJWTClaim("sub", tc.sub)),
		})
		compare(t, tc.in, got, want)
	}
	if _, err := (requestPrincipalGenerator{}).extendedPrincipal("request.auth.principal", []string{"a/b"}, true); err == nil {
		t.Error("request principals on TCP: no error (the rule must be dropped from ALLOW policies)")
	}
}

// TestClaimNames: request.auth.claims[a][b] is the nested claim a.b;
// [a.b] is the claim named "a.b" (extractNameInNestedBrackets).
func TestClaimNames(t *testing.T) {
	for in, want := range map[string][]string{"[a]": {"a"}, "[a][b]": {"a", "b"}, "[a.b]": {"a.b"}, "[a[b]]": {"a[b]"}} {
		got, err := nestedBracketNames(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("%s: %v, %v", in, got, err)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: %v, want %v", in, got, want)
			}
		}
	}
	if _, err := nestedBracketNames("a]"); err == nil {
		t.Error("a]: no error")
	}
}

// TestServiceAccountRegex is Istio's serviceAccountRegex: a namespace and
// service account, the policy's namespace when none is named.
func TestServiceAccountRegex(t *testing.T) {
	p, err := srcServiceAccountGenerator{policyNamespace: "foo"}.principal("", "sa.x", false, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.GetAuthenticated().GetPrincipalName().GetSafeRegex().GetRegex(); got != `spiffe://.+/ns/foo/(.+/|)sa/sa\.x(/.+)?` {
		t.Errorf("regex %s", got)
	}
	p, _ = srcServiceAccountGenerator{policyNamespace: "foo"}.principal("", "bar/sa", false, true)
	if got := p.GetAuthenticated().GetPrincipalName().GetSafeRegex().GetRegex(); got != `spiffe://.+/ns/bar/(.+/|)sa/sa(/.+)?` {
		t.Errorf("regex %s", got)
	}
}
