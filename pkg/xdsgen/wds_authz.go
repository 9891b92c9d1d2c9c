package xdsgen

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// AuthorizationPolicies as ztunnel enforces them: a port of istiod's
// convertAuthorizationPolicy and handleRule
// (pilot/pkg/serviceregistry/ambient/authorization.go, istio 86c9f01).

// Messages istiod writes to a policy's status when ztunnel cannot enforce
// all of it (authorization.go httpRuleFmt and its boilerplates).
const (
	wdsHTTPRuleFmt = "ztunnel does not support HTTP attributes (found: %s). " +
		"In ambient mode you must use a waypoint proxy to enforce HTTP rules. %s"
	wdsHTTPDenyNoEffect = "After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at ztunnel " +
		"and will have no effect. Deploy a waypoint proxy and use a targetRef to enforce this policy."
	wdsHTTPDenyMixed = "DENY policy with HTTP attributes is enforced without the HTTP rules. " +
		"This will be more restrictive than requested."
	wdsHTTPAllowRule = "Within an ALLOW policy, rules matching HTTP attributes are omitted. " +
		"This will be more restrictive than requested."
)

// dryRunAnnotation is istio.io/dry-run. istiod serves dry-run policies to
// ztunnel only behind a feature flag (EnableWdsDryRunAuthzPol, off by
// default); sluice does as istiod does by default: it leaves them out and
// says so.
const dryRunAnnotation = "istio.io/dry-run"

// wdsAuthorization converts one AuthorizationPolicy. A nil Authorization
// with a message: the policy is not served to ztunnel (the message says
// why); an Authorization with a message: served, with the HTTP parts
// dropped as the message says. Neither: a policy with targetRefs, which
// is for waypoints and gateways, not ztunnel (as istiod: no message).
func wdsAuthorization(rootNS string, ap *model.AuthorizationPolicy) (*security.Authorization, string) {
	pol := ap.Spec
	if v := ap.Annotations[dryRunAnnotation]; v != "" {
		if dry, err := strconv.ParseBool(v); err == nil && dry {
			return nil, fmt.Sprintf("found policy %q using dry-run annotation, but support for ambient dry-run authorizationPolicies isn't enabled",
				ap.Namespace+"/"+ap.Name)
		}
	}
	if len(pol.GetTargetRefs()) > 0 || pol.GetTargetRef() != nil {
		return nil, ""
	}
	scope := security.Scope_WORKLOAD_SELECTOR
	if pol.GetSelector() == nil {
		scope = security.Scope_NAMESPACE
		if ap.Namespace == rootNS {
			scope = security.Scope_GLOBAL
		}
	}
	var action security.Action
	switch pol.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		action = security.Action_ALLOW
	case securityv1beta1.AuthorizationPolicy_DENY:
		action = security.Action_DENY
	default:
		return nil, fmt.Sprintf("ztunnel does not support the %s action", pol.GetAction())
	}
	out := &security.Authorization{Name: ap.Name, Namespace: ap.Namespace, Scope: scope, Action: action}
	var l7 []string
	for _, rule := range pol.GetRules() {
		rules, found := wdsRule(action, rule, ap.Namespace)
		if rules != nil {
			out.Groups = append(out.Groups, &security.Group{Rules: rules})
		}
		l7 = append(l7, found...)
	}
	if len(l7) == 0 {
		return out, ""
	}
	slices.Sort(l7)
	var boilerplate string
	switch {
	case action == security.Action_DENY && !wdsEffectiveRules(out.Groups):
		boilerplate = wdsHTTPDenyNoEffect
	case action == security.Action_DENY:
		boilerplate = wdsHTTPDenyMixed
	default:
		boilerplate = wdsHTTPAllowRule
	}
	return out, fmt.Sprintf(wdsHTTPRuleFmt, strings.Join(slices.Compact(l7), ", "), boilerplate)
}

// wdsRule is istiod's handleRule: the rule's to, from and when as
// clauses (ANDed), each a list of matches (ORed); HTTP attributes are
// reported and, in an ALLOW policy, drop the whole rule (it never matches
// at ztunnel, which is stricter); in a DENY policy only the HTTP fields
// are left out (stricter again), and a match left empty is skipped by
// ztunnel.
func wdsRule(action security.Action, rule *securityv1beta1.Rule, ns string) ([]*security.Rules, []string) {
	var l7 []string
	var to, from []*security.Match
	for _, t := range rule.GetTo() {
		op := t.GetOperation()
		l7 = append(l7, wdsHTTPOperation(op)...)
		to = append(to, &security.Match{DestinationPorts: wdsPorts(op.GetPorts()), NotDestinationPorts: wdsPorts(op.GetNotPorts())})
	}
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		l7 = append(l7, wdsHTTPSource(s)...)
		from = append(from, &security.Match{
			SourceIps: wdsIPs(s.GetIpBlocks()), NotSourceIps: wdsIPs(s.GetNotIpBlocks()),
			Namespaces: wdsStrings(s.GetNamespaces()), NotNamespaces: wdsStrings(s.GetNotNamespaces()),
			ServiceAccounts:    wdsServiceAccounts(s.GetServiceAccounts(), ns),
			NotServiceAccounts: wdsServiceAccounts(s.GetNotServiceAccounts(), ns),
			Principals:         wdsStrings(s.GetPrincipals()), NotPrincipals: wdsStrings(s.GetNotPrincipals()),
		})
	}
	rules := []*security.Rules{}
	if len(to) > 0 {
		rules = append(rules, &security.Rules{Matches: to})
	}
	if len(from) > 0 {
		rules = append(rules, &security.Rules{Matches: from})
	}
	for _, when := range rule.GetWhen() {
		if !wdsL4When[when.GetKey()] {
			l7 = append(l7, when.GetKey())
		}
		rules = append(rules, &security.Rules{Matches: []*security.Match{wdsWhen(when)}})
	}
	if action == security.Action_ALLOW && len(l7) > 0 {
		rules = nil // L7 rules never match at ztunnel
	}
	return rules, l7
}

// wdsL4When are the condition keys ztunnel evaluates (istiod's
// l4WhenAttributes).
var wdsL4When = map[string]bool{
	"source.ip": true, "source.namespace": true, "source.principal": true, "destination.ip": true, "destination.port": true,
}

// wdsWhen is one condition as a match (whenMatch): only the field of its
// key is set.
func wdsWhen(w *securityv1beta1.Condition) *security.Match {
	m := &security.Match{}
	v, nv := w.GetValues(), w.GetNotValues()
	switch w.GetKey() {
	case "source.namespace":
		m.Namespaces, m.NotNamespaces = wdsStrings(v), wdsStrings(nv)
	case "source.principal":
		m.Principals, m.NotPrincipals = wdsStrings(v), wdsStrings(nv)
	case "source.ip":
		m.SourceIps, m.NotSourceIps = wdsIPs(v), wdsIPs(nv)
	case "destination.port":
		m.DestinationPorts, m.NotDestinationPorts = wdsPorts(v), wdsPorts(nv)
	case "destination.ip":
		m.DestinationIps, m.NotDestinationIps = wdsIPs(v), wdsIPs(nv)
	}
	return m
}

func wdsHTTPOperation(op *securityv1beta1.Operation) []string {
	var out []string
	for _, f := range []struct {
		name string
		v    []string
	}{{"hosts", op.GetHosts()}, {"notHosts", op.GetNotHosts()}, {"methods", op.GetMethods()},
		{"notMethods", op.GetNotMethods()}, {"paths", op.GetPaths()}, {"notPaths", op.GetNotPaths()}} {
		if len(f.v) > 0 {
			out = append(out, f.name)
		}
	}
	return out
}

func wdsHTTPSource(s *securityv1beta1.Source) []string {
	var out []string
	for _, f := range []struct {
		name string
		v    []string
	}{{"remoteIpBlocks", s.GetRemoteIpBlocks()}, {"notRemoteIpBlocks", s.GetNotRemoteIpBlocks()},
		{"requestPrincipals", s.GetRequestPrincipals()}, {"notRequestPrincipals", s.GetNotRequestPrincipals()}} {
		if len(f.v) > 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// wdsEffectiveRules is istiod's hasEffectiveRules: some group fires at
// ztunnel (a group without clauses matches everything; a clause whose
// matches are all empty never matches).
func wdsEffectiveRules(groups []*security.Group) bool {
	for _, g := range groups {
		if len(g.GetRules()) == 0 {
			return true
		}
		effective := true
		for _, clause := range g.GetRules() {
			if !slices.ContainsFunc(clause.GetMatches(), func(m *security.Match) bool {
				return m != nil && !proto.Equal(m, &security.Match{})
			}) {
				effective = false
				break
			}
		}
		if effective {
			return true
		}
	}
	return false
}

// wdsStrings is istiod's stringToMatch: "*" presence, "*x" suffix, "x*"
// prefix, else exact.
func wdsStrings(vs []string) []*security.StringMatch {
	out := make([]*security.StringMatch, 0, len(vs))
	for _, v := range vs {
		var sm *security.StringMatch
		switch {
		case v == "*":
			sm = &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}
		case strings.HasPrefix(v, "*"):
			sm = &security.StringMatch{MatchType: &security.StringMatch_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
		case strings.HasSuffix(v, "*"):
			sm = &security.StringMatch{MatchType: &security.StringMatch_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
		default:
			sm = &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: v}}
		}
		out = append(out, sm)
	}
	return out
}

// wdsServiceAccounts is istiod's stringToServiceAccountMatch: "ns/sa", or
// "sa" in the policy's namespace.
func wdsServiceAccounts(vs []string, ns string) []*security.ServiceAccountMatch {
	out := make([]*security.ServiceAccountMatch, 0, len(vs))
	for _, v := range vs {
		if n, sa, ok := strings.Cut(v, "/"); ok {
			out = append(out, &security.ServiceAccountMatch{Namespace: n, ServiceAccount: sa})
		} else {
			out = append(out, &security.ServiceAccountMatch{Namespace: ns, ServiceAccount: v})
		}
	}
	return out
}

// wdsPorts is istiod's stringToPort: ports that do not parse are left
// out (the webhook's validation refuses them before).
func wdsPorts(vs []string) []uint32 {
	out := make([]uint32, 0, len(vs))
	for _, v := range vs {
		if p, err := strconv.ParseUint(v, 10, 32); err == nil && p <= 65535 {
			out = append(out, uint32(p))
		}
	}
	return out
}

// wdsIPs is istiod's stringToIP: an address or CIDR as bytes and prefix
// length.
func wdsIPs(vs []string) []*security.Address {
	out := make([]*security.Address, 0, len(vs))
	for _, v := range vs {
		if v == "" {
			continue
		}
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				continue
			}
			out = append(out, &security.Address{Address: p.Addr().AsSlice(), Length: uint32(p.Bits())})
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			continue
		}
		out = append(out, &security.Address{Address: a.AsSlice(), Length: uint32(a.BitLen())})
	}
	return out
}
