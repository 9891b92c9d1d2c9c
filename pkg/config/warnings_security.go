package config

import (
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// securityWarnings are the warnings Istio's ValidateAuthorizationPolicy
// and ValidateRequestAuthentication return with an accepted resource.
func securityWarnings(r *Resource, warn func(field, msg string)) {
	switch spec := r.Spec.(type) {
	case *securityv1beta1.AuthorizationPolicy:
		selectorWarning(spec.GetSelector(), warn)
		if spec.GetAction() == securityv1beta1.AuthorizationPolicy_DENY {
			for i, rule := range spec.GetRules() {
				if denyRuleHTTPOnly(rule) {
					warn(fmt.Sprintf("spec.rules[%d]", i), "configured AuthorizationPolicy will deny all traffic to TCP ports under its "+
						"scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port")
				}
			}
		}
	case *securityv1beta1.RequestAuthentication:
		selectorWarning(spec.GetSelector(), warn)
		for i, rule := range spec.GetJwtRules() {
			privateKeyWarnings(fmt.Sprintf("spec.jwtRules[%d].jwks", i), rule.GetJwks(), warn)
		}
	}
}

func selectorWarning(s *typev1beta1.WorkloadSelector, warn func(field, msg string)) {
	if s != nil && len(s.GetMatchLabels()) == 0 {
		warn("spec.selector", "workload selector specified without labels")
	}
}

// denyRuleHTTPOnly is Istio's condition for its DENY warning: the rule's
// from or to uses only HTTP attributes, so on TCP ports it matches every
// connection.
func denyRuleHTTPOnly(rule *securityv1beta1.Rule) bool {
	fromExists, toExists, tcpInFrom, tcpInTo := false, false, false, false
	for _, f := range rule.GetFrom() {
		s := f.GetSource()
		if s == nil {
			continue
		}
		fromExists = true
		if s.Principals != nil || s.NotPrincipals != nil || s.IpBlocks != nil || s.NotIpBlocks != nil || s.Namespaces != nil ||
			s.NotNamespaces != nil || s.RemoteIpBlocks != nil || s.NotRemoteIpBlocks != nil || s.ServiceAccounts != nil || s.NotServiceAccounts != nil {
			tcpInFrom = true
		}
	}
	for _, t := range rule.GetTo() {
		op := t.GetOperation()
		if op == nil {
			continue
		}
		toExists = true
		if op.Ports != nil || op.NotPorts != nil {
			tcpInTo = true
		}
	}
	return (fromExists && !toExists && !tcpInFrom) || (toExists && !tcpInTo)
}

// privateKeyWarnings is warnPrivateJwksKeys: an inline JWKS holding
// private key material (only public keys are used to verify).
func privateKeyWarnings(field, jwks string, warn func(field, msg string)) {
	if jwks == "" {
		return
	}
	var set jose.JSONWebKeySet
	if json.Unmarshal([]byte(jwks), &set) != nil {
		return
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			warn(field, fmt.Sprintf("jwks key at index %d contains private key material; only public keys are used for verification", i))
		}
	}
}
