package config

import (
	"fmt"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// Metadata filters an AuthorizationPolicy's experimental.envoy.filters.*
// condition may name: the ones whose dynamic metadata sluice's proxy
// writes. A condition on any other filter's metadata could never match
// (a DENY rule would never deny), so it is rejected.
var experimentalMetadataFilters = map[string]bool{"envoy.filters.http.jwt_authn": true}

const (
	customReason    = "CUSTOM action: ext-authz provider not supported"
	waypointTargets = "targetRefs to a Service, ServiceEntry or GatewayClass attach the policy to waypoint proxies " +
		"(istiod's WorkloadPolicyMatcher.ShouldAttachPolicy ignores them for sidecars and gateways); sluice runs no waypoints"
)

// securityRows are the support table's rows for AuthorizationPolicy and
// RequestAuthentication.
func securityRows() []Feature {
	ap, ra := string(KindAuthorizationPolicy), string(KindRequestAuthentication)
	out := rows(
		// Exercised by ../shared/conformance/istio-security (claimed).
		supported(ap, "", "spec.selector", "spec.rules", "spec.rules[].from[].source.principals",
			"spec.rules[].from[].source.requestPrincipals", "spec.rules[].from[].source.notRequestPrincipals",
			"spec.rules[].from[].source.ipBlocks", "spec.rules[].to[].operation.ports", "spec.rules[].to[].operation.methods",
			"spec.rules[].when[].key", "spec.rules[].when[].values", "spec.rules[].when[].notValues"),
		supported(ap, "ALLOW, DENY and AUDIT (Envoy RBAC action LOG); the istio.io/dry-run annotation makes ALLOW/DENY shadow rules", "spec.action"),
		supported(ap, "exact, prefix `x*`, suffix `*x`, `*`, and the path templates `{*}` and `{**}` (Envoy uri_template)",
			"spec.rules[].to[].operation.paths"),
		unclaimed(notConformance, supported(ap, "", "spec.rules[].from[].source.notPrincipals",
			"spec.rules[].from[].source.namespaces", "spec.rules[].from[].source.notNamespaces",
			"spec.rules[].from[].source.serviceAccounts", "spec.rules[].from[].source.notServiceAccounts",
			"spec.rules[].from[].source.trustDomains", "spec.rules[].from[].source.notTrustDomains",
			"spec.rules[].from[].source.notIpBlocks", "spec.rules[].from[].source.remoteIpBlocks",
			"spec.rules[].from[].source.notRemoteIpBlocks", "spec.rules[].to[].operation.hosts",
			"spec.rules[].to[].operation.notHosts", "spec.rules[].to[].operation.notPorts",
			"spec.rules[].to[].operation.notMethods")),
		unclaimed(notConformance, supported(ap, "exact, prefix `x*`, suffix `*x`, `*`, and the path templates `{*}` and `{**}` (Envoy uri_template)",
			"spec.rules[].to[].operation.notPaths")),
		unclaimed(notConformance, supported(ap, "to a Gateway (gateway.networking.k8s.io): applies to that Gateway's router proxies, as istiod", "spec.targetRef", "spec.targetRefs")),
		supported(ra, "", "spec.selector", "spec.jwtRules[].issuer", "spec.jwtRules[].jwks"),
		unclaimed(notConformance, supported(ra, "", "spec.jwtRules[].audiences",
			"spec.jwtRules[].fromHeaders", "spec.jwtRules[].fromParams", "spec.jwtRules[].fromCookies",
			"spec.jwtRules[].forwardOriginalToken", "spec.jwtRules[].outputPayloadToHeader", "spec.jwtRules[].outputClaimToHeaders",
			"spec.jwtRules[].spaceDelimitedClaims")),
		unclaimed(notConformance, supported(ra, "fetched by `sluice control` as istiod does (cached, refreshed; OpenID discovery from the issuer "+
			"when neither jwks nor jwksUri is set) and inlined as local_jwks; unreachable: tokens of that issuer are refused",
			"spec.jwtRules[].jwksUri", "spec.jwtRules[].timeout")),
		unclaimed(notConformance, supported(ra, "to a Gateway (gateway.networking.k8s.io): applies to that Gateway's router proxies, as istiod", "spec.targetRef", "spec.targetRefs")),
		[]Feature{
			{Kind: ap, Field: "spec.action", Support: Rejected, Reason: customReason,
				find: func(r *Resource) []string {
					p, _ := r.Spec.(*securityv1beta1.AuthorizationPolicy)
					return pathIf(p.GetAction() == securityv1beta1.AuthorizationPolicy_CUSTOM, "spec.action")
				}},
			{Kind: ap, Field: "spec.provider", Support: Rejected, Reason: customReason,
				find: func(r *Resource) []string {
					p, _ := r.Spec.(*securityv1beta1.AuthorizationPolicy)
					return pathIf(p.GetProvider() != nil, "spec.provider")
				}},
			{Kind: ap, Field: "spec.rules[].when[].key", Support: Rejected,
				Reason: "experimental.envoy.filters.* conditions match dynamic metadata; sluice's proxy writes it only for envoy.filters.http.jwt_authn, " +
					"so a condition on another filter could never match",
				find: experimentalConditions},
		},
	)
	for _, kind := range []string{ap, ra} {
		out = append(out, Feature{Kind: kind, Field: "spec.targetRefs", Support: Rejected, Reason: waypointTargets, find: waypointTargetRefs})
	}
	return out
}

func experimentalConditions(r *Resource) []string {
	p, _ := r.Spec.(*securityv1beta1.AuthorizationPolicy)
	var out []string
	for i, rule := range p.GetRules() {
		for j, c := range rule.GetWhen() {
			rest, ok := strings.CutPrefix(c.GetKey(), AttrExperimental)
			if !ok {
				continue
			}
			filter, _, _ := strings.Cut("envoy.filters."+rest, "[")
			if !experimentalMetadataFilters[filter] {
				out = append(out, fmt.Sprintf("spec.rules[%d].when[%d].key", i, j))
			}
		}
	}
	return out
}

// targetable is what AuthorizationPolicy and RequestAuthentication share.
type targetable interface {
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
}

func waypointTargetRefs(r *Resource) []string {
	t, ok := r.Spec.(targetable)
	if !ok {
		return nil
	}
	var out []string
	if ref := t.GetTargetRef(); ref != nil && !gatewayRef(ref) {
		out = append(out, "spec.targetRef")
	}
	for i, ref := range t.GetTargetRefs() {
		if !gatewayRef(ref) {
			out = append(out, idx("spec.targetRefs", i))
		}
	}
	return out
}

func gatewayRef(ref *typev1beta1.PolicyTargetReference) bool {
	return ref.GetGroup() == GatewayAPIGroup && ref.GetKind() == "Gateway"
}
