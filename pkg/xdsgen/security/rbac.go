package security

import (
	"fmt"
	"strconv"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// RBAC policies from AuthorizationPolicies, as Istio's
// pilot/pkg/security/authz/builder/builder.go builds them.

// Stat prefixes of Istio's RBAC filters (authz/model/model.go).
const (
	TCPStatPrefix              = "tcp."
	ShadowRulesAllowStatPrefix = "istio_dry_run_allow_"
	ShadowRulesDenyStatPrefix  = "istio_dry_run_deny_"
	badCustomActionSuffix      = "-deny-due-to-bad-CUSTOM-action"
)

// rbacPolicyMatchNever is what a policy without rules becomes: it
// matches nothing (so an ALLOW policy without rules denies everything).
func rbacPolicyMatchNever() *rbacpb.Policy {
	return &rbacpb.Policy{
		Permissions: []*rbacpb.Permission{permissionNot(permissionAny())},
		Principals:  []*rbacpb.Principal{principalNot(principalAny())},
	}
}

// rbacRules is one action's enforced and dry-run (shadow) rules; nil
// when no policy of that kind exists.
type rbacRules struct {
	rules, shadow *rbacpb.RBAC
}

// PolicyName is Istio's RBAC policy name of rule i of a policy.
func PolicyName(namespace, name string, rule int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", namespace, name, rule)
}

func isDryRun(ap *model.AuthorizationPolicy) bool {
	v, ok := ap.Annotations[config.AnnotationDryRun]
	if !ok {
		return false
	}
	b, _ := strconv.ParseBool(v) // validation refused other values
	return b
}

// rbacBuilder holds the inputs of one workload's RBAC generation.
type rbacBuilder struct {
	td               trustDomainBundle
	forTCP           bool
	useAuthenticated bool
	// notes collect what Istio logs: rules skipped on TCP chains.
	notes []string
}

// build is Builder.build for the policies of one action.
func (b *rbacBuilder) build(policies []*model.AuthorizationPolicy, action rbacpb.RBAC_Action) *rbacRules {
	if len(policies) == 0 {
		return nil
	}
	enforce := &rbacpb.RBAC{Action: action, Policies: map[string]*rbacpb.Policy{}}
	shadow := &rbacpb.RBAC{Action: action, Policies: map[string]*rbacpb.Policy{}}
	hasEnforce, hasShadow := false, false
	for _, ap := range policies {
		current := enforce
		if isDryRun(ap) {
			current, hasShadow = shadow, true
		} else {
			hasEnforce = true
		}
		for i, r := range ap.Spec.GetRules() {
			name := PolicyName(ap.Namespace, ap.Name, i)
			if r == nil {
				continue
			}
			m, err := newModel(ap.Namespace, r)
			if err != nil {
				b.notes = append(b.notes, fmt.Sprintf("skipped invalid rule %s: %v", name, err))
				continue
			}
			m.migrateTrustDomain(b.td)
			generated, err := m.generate(b.forTCP, b.useAuthenticated, action)
			if err != nil {
				b.notes = append(b.notes, fmt.Sprintf("skipped rule %s on TCP filter chain: %v", name, err))
				continue
			}
			current.Policies[name] = generated
		}
		if len(ap.Spec.GetRules()) == 0 {
			current.Policies[PolicyName(ap.Namespace, ap.Name, 0)] = rbacPolicyMatchNever()
		}
	}
	out := &rbacRules{}
	if hasEnforce {
		out.rules = enforce
	}
	if hasShadow {
		out.shadow = shadow
	}
	return out
}

// shadowStatPrefix is Istio's shadow_rules_stat_prefix for the action.
func shadowStatPrefix(r *rbacpb.RBAC) string {
	switch r.GetAction() {
	case rbacpb.RBAC_ALLOW:
		return ShadowRulesAllowStatPrefix
	case rbacpb.RBAC_DENY:
		return ShadowRulesDenyStatPrefix
	}
	return ""
}

// all is Istio's build(): the RBAC rules of each action present, in
// filter order: AUDIT (action LOG), DENY, ALLOW. CUSTOM policies, which
// sluice's config rejects, would fail closed as Istio fails a CUSTOM
// policy it cannot serve: their rules deny (getBadCustomDenyRules).
func (b *rbacBuilder) all(p model.AuthorizationPolicies) []*rbacRules {
	var out []*rbacRules
	if custom := b.build(p.Custom, rbacpb.RBAC_DENY); custom != nil {
		bad := &rbacpb.RBAC{Action: rbacpb.RBAC_DENY, Policies: map[string]*rbacpb.Policy{}}
		for _, r := range []*rbacpb.RBAC{custom.rules, custom.shadow} {
			for name, pol := range r.GetPolicies() {
				bad.Policies[name+badCustomActionSuffix] = pol
			}
		}
		out = append(out, &rbacRules{rules: bad})
	}
	for _, step := range []struct {
		policies []*model.AuthorizationPolicy
		action   rbacpb.RBAC_Action
	}{{p.Audit, rbacpb.RBAC_LOG}, {p.Deny, rbacpb.RBAC_DENY}, {p.Allow, rbacpb.RBAC_ALLOW}} {
		if r := b.build(step.policies, step.action); r != nil {
			out = append(out, r)
		}
	}
	return out
}
