package ztunnel

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// policy is one WDS Authorization compiled for matching, with
// ztunnel's semantics (src/rbac.rs): a policy matches when one of its
// groups matches; a group when every one of its rules does; a rule when
// one of its matches does (a rule with no match always does); a match
// when every attribute it sets holds, positive and negative.
type policy struct {
	key, name, namespace string
	scope                security.Scope
	action               security.Action
	dryRun               bool
	groups               [][][]match
}

type match struct {
	namespaces, notNamespaces []strMatch
	principals, notPrincipals []strMatch
	sas, notSAs               []saMatch
	srcIPs, notSrcIPs         []netip.Prefix
	dstIPs, notDstIPs         []netip.Prefix
	dstPorts, notDstPorts     []uint32
	empty                     bool
}

type strMatch struct {
	kind  int // 0 exact, 1 prefix, 2 suffix, 3 presence
	value string
}

type saMatch struct{ namespace, sa string }

// conn is what an authorization decision reads of a connection
// (ztunnel's rbac::Connection).
type conn struct {
	src, dst netip.AddrPort
	// peer is the verified SPIFFE ID of the source; empty for plaintext.
	peer string
}

func compilePolicy(a *security.Authorization) (*policy, error) {
	if len(a.GetExtensions()) > 0 {
		return nil, fmt.Errorf("extensions: %s not understood (refused rather than enforced partly)", a.GetExtensions()[0].GetName())
	}
	p := &policy{key: a.GetNamespace() + "/" + a.GetName(), name: a.GetName(), namespace: a.GetNamespace(),
		scope: a.GetScope(), action: a.GetAction(), dryRun: a.GetDryRun()}
	for gi, g := range a.GetGroups() {
		var rules [][]match
		for ri, r := range g.GetRules() {
			var ms []match
			for mi, m := range r.GetMatches() {
				cm, err := compileMatch(m)
				if err != nil {
					return nil, fmt.Errorf("groups[%d].rules[%d].matches[%d]: %w", gi, ri, mi, err)
				}
				ms = append(ms, cm)
			}
			rules = append(rules, ms)
		}
		p.groups = append(p.groups, rules)
	}
	return p, nil
}

func compileMatch(m *security.Match) (match, error) {
	if len(m.GetExtensions()) > 0 {
		return match{}, fmt.Errorf("extensions: %s not understood", m.GetExtensions()[0].GetName())
	}
	var out match
	var err error
	out.namespaces, out.notNamespaces = strMatches(m.GetNamespaces()), strMatches(m.GetNotNamespaces())
	out.principals, out.notPrincipals = strMatches(m.GetPrincipals()), strMatches(m.GetNotPrincipals())
	out.sas, out.notSAs = saMatches(m.GetServiceAccounts()), saMatches(m.GetNotServiceAccounts())
	if out.srcIPs, err = prefixes(m.GetSourceIps()); err != nil {
		return match{}, fmt.Errorf("source_ips: %w", err)
	}
	if out.notSrcIPs, err = prefixes(m.GetNotSourceIps()); err != nil {
		return match{}, fmt.Errorf("not_source_ips: %w", err)
	}
	if out.dstIPs, err = prefixes(m.GetDestinationIps()); err != nil {
		return match{}, fmt.Errorf("destination_ips: %w", err)
	}
	if out.notDstIPs, err = prefixes(m.GetNotDestinationIps()); err != nil {
		return match{}, fmt.Errorf("not_destination_ips: %w", err)
	}
	out.dstPorts, out.notDstPorts = m.GetDestinationPorts(), m.GetNotDestinationPorts()
	out.empty = len(out.namespaces)+len(out.notNamespaces)+len(out.principals)+len(out.notPrincipals)+
		len(out.sas)+len(out.notSAs)+len(out.srcIPs)+len(out.notSrcIPs)+len(out.dstIPs)+len(out.notDstIPs)+
		len(out.dstPorts)+len(out.notDstPorts) == 0
	return out, nil
}

func strMatches(in []*security.StringMatch) []strMatch {
	out := make([]strMatch, 0, len(in))
	for _, s := range in {
		switch t := s.GetMatchType().(type) {
		case *security.StringMatch_Exact:
			out = append(out, strMatch{0, t.Exact})
		case *security.StringMatch_Prefix:
			out = append(out, strMatch{1, t.Prefix})
		case *security.StringMatch_Suffix:
			out = append(out, strMatch{2, t.Suffix})
		case *security.StringMatch_Presence:
			out = append(out, strMatch{3, ""})
		default:
			// An empty StringMatch matches nothing (ztunnel drops it when
			// converting, so the attribute's other values decide).
		}
	}
	return out
}

func saMatches(in []*security.ServiceAccountMatch) []saMatch {
	out := make([]saMatch, 0, len(in))
	for _, s := range in {
		out = append(out, saMatch{s.GetNamespace(), s.GetServiceAccount()})
	}
	return out
}

func prefixes(in []*security.Address) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, a := range in {
		ip, ok := netip.AddrFromSlice(a.GetAddress())
		if !ok {
			return nil, fmt.Errorf("%d bytes is not an IP address", len(a.GetAddress()))
		}
		p, err := ip.Unmap().Prefix(int(a.GetLength()))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (s strMatch) matches(v string) bool {
	switch s.kind {
	case 0:
		return v == s.value
	case 1:
		return strings.HasPrefix(v, s.value)
	case 2:
		return strings.HasSuffix(v, s.value)
	default:
		return v != ""
	}
}

// anyOf is matches_internal: positives (if any) must have a hit and
// negatives (if any) must have none.
func anyOf[T any](pos, neg []T, hit func(T) bool) bool {
	if len(pos) > 0 {
		found := false
		for _, p := range pos {
			if hit(p) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, n := range neg {
		if hit(n) {
			return false
		}
	}
	return true
}

func (m *match) matches(c conn, ns, sa, principal string) bool {
	return anyOf(m.dstIPs, m.notDstIPs, func(p netip.Prefix) bool { return p.Contains(c.dst.Addr()) }) &&
		anyOf(m.srcIPs, m.notSrcIPs, func(p netip.Prefix) bool { return p.Contains(c.src.Addr()) }) &&
		anyOf(m.dstPorts, m.notDstPorts, func(p uint32) bool { return p == uint32(c.dst.Port()) }) &&
		anyOf(m.sas, m.notSAs, func(s saMatch) bool { return c.peer != "" && s.namespace == ns && s.sa == sa }) &&
		// principals match the ID without "spiffe://" (matches_principal);
		// a plaintext peer has none.
		anyOf(m.principals, m.notPrincipals, func(s strMatch) bool { return c.peer != "" && s.matches(principal) }) &&
		anyOf(m.namespaces, m.notNamespaces, func(s strMatch) bool { return s.matches(ns) })
}

// matches is Authorization::matches.
func (p *policy) matches(c conn) bool {
	_, ns, sa, _ := parseSpiffe(c.peer)
	principal := strings.TrimPrefix(c.peer, "spiffe://")
	if len(p.groups) == 0 {
		return false
	}
	for _, rules := range p.groups {
		groupOK := true
		for _, ms := range rules {
			ruleOK := len(ms) == 0
			for i := range ms {
				if ms[i].empty {
					continue // an empty match never matches (ztunnel: "empty clause")
				}
				if ms[i].matches(c, ns, sa, principal) {
					ruleOK = true
					break
				}
			}
			if !ruleOK {
				groupOK = false
				break
			}
		}
		if groupOK {
			return true
		}
	}
	return false
}

// decision is an authorization outcome and what decided it.
type decision struct {
	allowed bool
	reason  string
}

// authorize is ztunnel's assert_rbac: the destination workload's
// policies are its namespace's, the global ones and those naming it;
// any matching DENY denies; with no ALLOW policy the connection is
// allowed; with some, one must match. Dry-run policies are logged only.
func (ix *index) authorize(dst *workload, c conn) decision {
	var allow, deny []*policy
	add := func(p *policy) {
		if p == nil || p.dryRun {
			return
		}
		if p.action == security.Action_DENY {
			deny = append(deny, p)
		} else {
			allow = append(allow, p)
		}
	}
	for _, p := range ix.byScope[dst.GetNamespace()] {
		add(p)
	}
	for _, p := range ix.byScope[""] {
		add(p)
	}
	for _, name := range dst.GetAuthorizationPolicies() {
		p := ix.policies[name]
		if p == nil {
			// ztunnel skips an unknown name with a warning; a policy the
			// control plane meant to apply and did not send fails closed here.
			return decision{false, "policy " + name + " is not known yet"}
		}
		add(p)
	}
	for _, p := range deny {
		if p.matches(c) {
			return decision{false, "denied by " + p.key}
		}
	}
	if len(allow) == 0 {
		return decision{true, "no ALLOW policy"}
	}
	for _, p := range allow {
		if p.matches(c) {
			return decision{true, "allowed by " + p.key}
		}
	}
	return decision{false, "no ALLOW policy matched"}
}
