package security

import (
	"slices"
	"strings"
)

// trustDomainBundle is the mesh trust domain followed by its aliases
// (Istio's pilot/pkg/security/trustdomain/bundle.go): a policy naming a
// principal of one of them also matches the same identity in the others.
type trustDomainBundle struct{ domains []string }

func newTrustDomainBundle(td string, aliases []string) trustDomainBundle {
	return trustDomainBundle{domains: append([]string{td}, aliases...)}
}

const clusterLocalDomain = "cluster.local"

// replaceAliases is ReplaceTrustDomainAliases: each principal
// "td/ns/x/sa/y" whose td is in the bundle (or cluster.local) becomes one
// principal per trust domain of the bundle.
func (b trustDomainBundle) replaceAliases(principals []string) []string {
	if len(principals) == 0 {
		return principals
	}
	out := []string{}
	for _, p := range principals {
		parts := strings.Split(p, "/")
		if len(parts) != 5 || parts[0] == "*" {
			out = append(out, p)
			continue
		}
		td := parts[0]
		if !tdMatchesAny(td, b.domains) && td != clusterLocalDomain {
			out = append(out, p)
			continue
		}
		var forAliases []string
		for _, alias := range b.domains {
			np := p
			if !suffixPattern(alias, td) {
				np = alias + "/" + strings.Join(parts[1:], "/")
			}
			if !slices.Contains(forAliases, np) {
				forAliases = append(forAliases, np)
			}
		}
		out = append(out, forAliases...)
	}
	return out
}

// expandAliases is ExpandTrustDomainAliases: a trust domain of the bundle
// becomes all of them.
func (b trustDomainBundle) expandAliases(values []string) []string {
	if len(values) == 0 {
		return values
	}
	var out []string
	for _, v := range values {
		if slices.Contains(b.domains, v) {
			out = append(out, b.domains...)
		} else {
			out = append(out, v)
		}
	}
	seen := map[string]bool{}
	dedup := out[:0]
	for _, v := range out {
		if !seen[v] {
			seen[v] = true
			dedup = append(dedup, v)
		}
	}
	return dedup
}

// tdMatchesAny is trustdomain.stringMatch.
func tdMatchesAny(a string, list []string) bool {
	for _, s := range list {
		if a == s || s == "*" || prefixPattern(a, s) || prefixPattern(s, a) || suffixPattern(a, s) || suffixPattern(s, a) {
			return true
		}
	}
	return false
}

func prefixPattern(a, pattern string) bool {
	p, ok := strings.CutSuffix(pattern, "*")
	return ok && strings.HasPrefix(a, p)
}

func suffixPattern(a, pattern string) bool {
	p, ok := strings.CutPrefix(pattern, "*")
	return ok && strings.HasSuffix(a, p)
}
