package model

import (
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// AuthorizationPolicy is an AuthorizationPolicy resource with its spec.
type AuthorizationPolicy struct {
	*config.Resource
	Spec *securityv1beta1.AuthorizationPolicy
}

// RequestAuthentication is a RequestAuthentication resource with its spec.
type RequestAuthentication struct {
	*config.Resource
	Spec *securityv1beta1.RequestAuthentication
}

// AuthorizationPolicies are the policies applying to one workload by
// action, each list in Istio's order (root namespace first, then by
// creation time; model.ListAuthorizationPolicies).
type AuthorizationPolicies struct {
	Custom, Deny, Allow, Audit []*AuthorizationPolicy
}

// PolicyMatcher is the workload a security policy may apply to: Istio's
// WorkloadPolicyMatcher for sidecars and gateways (sluice runs no
// waypoints, so no service attachment).
type PolicyMatcher struct {
	Namespace string
	Labels    map[string]string
}

// PolicyMatcherFor is the matcher of a proxy: its namespace and labels.
func PolicyMatcherFor(p *Proxy) PolicyMatcher {
	return PolicyMatcher{Namespace: p.Namespace, Labels: p.Labels}
}

// targetable is what security policies share for selection.
type targetable interface {
	GetTargetRef() *typev1beta1.PolicyTargetReference
	GetTargetRefs() []*typev1beta1.PolicyTargetReference
	GetSelector() *typev1beta1.WorkloadSelector
}

// Attaches says whether a policy in namespace policyNS applies to the
// workload, as Istio's WorkloadPolicyMatcher.ShouldAttachPolicy does
// without waypoints: a workload that is not a Gateway API gateway (no
// gateway.networking.k8s.io/gateway-name label) is selected by the
// policy's selector (none: every workload of the namespace) and never by
// a policy with targetRefs; a Gateway API gateway by targetRefs to its
// Gateway in its namespace, or, when the policy has no targetRefs, by the
// selector (ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY, default true).
func (m PolicyMatcher) Attaches(policyNS string, p targetable) bool {
	refs := p.GetTargetRefs()
	if len(refs) == 0 && p.GetTargetRef() != nil {
		refs = []*typev1beta1.PolicyTargetReference{p.GetTargetRef()}
	}
	gatewayName, isGateway := m.Labels[gatewayapi.GatewayNameLabel]
	if len(refs) == 0 {
		return registry.LabelsMatch(p.GetSelector().GetMatchLabels(), m.Labels)
	}
	if !isGateway || policyNS != m.Namespace {
		return false
	}
	for _, ref := range refs {
		if (ref.GetNamespace() == "" || ref.GetNamespace() == m.Namespace) &&
			ref.GetGroup() == config.GatewayAPIGroup && ref.GetKind() == "Gateway" && ref.GetName() == gatewayName {
			return true
		}
	}
	return false
}

// AuthorizationPoliciesFor lists the AuthorizationPolicies applying to the
// workload m: those of the root namespace, then those of its own, each
// oldest first (Istio's ListAuthorizationPolicies).
func (pc *PushContext) AuthorizationPoliciesFor(m PolicyMatcher) AuthorizationPolicies {
	var out AuthorizationPolicies
	for _, ns := range dedupe(pc.RootNamespace(), m.Namespace) {
		for _, ap := range pc.authzPolicies[ns] {
			if !m.Attaches(ns, ap.Spec) {
				continue
			}
			switch ap.Spec.GetAction() {
			case securityv1beta1.AuthorizationPolicy_ALLOW:
				out.Allow = append(out.Allow, ap)
			case securityv1beta1.AuthorizationPolicy_DENY:
				out.Deny = append(out.Deny, ap)
			case securityv1beta1.AuthorizationPolicy_AUDIT:
				out.Audit = append(out.Audit, ap)
			case securityv1beta1.AuthorizationPolicy_CUSTOM:
				out.Custom = append(out.Custom, ap)
			}
		}
	}
	return out
}

// RequestAuthenticationsFor lists the RequestAuthentications applying to
// the workload m: its own namespace's, then the root namespace's, each
// oldest first (Istio's GetJwtPoliciesForWorkload).
func (pc *PushContext) RequestAuthenticationsFor(m PolicyMatcher) []*RequestAuthentication {
	var out []*RequestAuthentication
	for _, ns := range dedupe(m.Namespace, pc.RootNamespace()) {
		for _, ra := range pc.requestAuthns[ns] {
			if m.Attaches(ns, ra.Spec) {
				out = append(out, ra)
			}
		}
	}
	return out
}

func dedupe(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// indexSecurity indexes the security policies of resources by namespace,
// oldest first, and resolves the JWKS of every jwtRule without an inline
// jwks through opts.Jwks.
func (pc *PushContext) indexSecurity(resources []*config.Resource, jwks JwksSource) {
	pc.authzPolicies = map[string][]*AuthorizationPolicy{}
	pc.requestAuthns = map[string][]*RequestAuthentication{}
	// Only the policies are sorted (a stable sort of a subsequence keeps
	// its order): sorting every resource was most of a push's indexing.
	var sorted []*config.Resource
	for _, r := range resources {
		switch r.Spec.(type) {
		case *securityv1beta1.AuthorizationPolicy, *securityv1beta1.RequestAuthentication:
			sorted = append(sorted, r)
		}
	}
	config.SortByCreation(sorted)
	for _, r := range sorted {
		switch spec := r.Spec.(type) {
		case *securityv1beta1.AuthorizationPolicy:
			pc.authzPolicies[r.Namespace] = append(pc.authzPolicies[r.Namespace], &AuthorizationPolicy{Resource: r, Spec: spec})
		case *securityv1beta1.RequestAuthentication:
			pc.requestAuthns[r.Namespace] = append(pc.requestAuthns[r.Namespace], &RequestAuthentication{Resource: r, Spec: spec})
			pc.resolveJwks(spec, jwks)
		}
	}
}

// JwksSource fetches the JWKS of an issuer: from jwksURI, or from the
// issuer's OpenID discovery document when jwksURI is empty (Istio's
// JwksResolver.GetPublicKey). The control plane's is pkg/jwks.Resolver.
type JwksSource interface {
	Jwks(issuer, jwksURI string, timeout time.Duration) (string, error)
}

// JwksKey names one JWKS to fetch.
type JwksKey struct{ Issuer, URI string }

// jwksResult is one resolved JWKS: the keys, or why there are none.
type jwksResult struct {
	keys string
	err  error
}

// DefaultJwksTimeout is the fetch timeout of a jwtRule without timeout
// (Istio's convertToEnvoyJwtConfig).
const DefaultJwksTimeout = 5 * time.Second

func (pc *PushContext) resolveJwks(ra *securityv1beta1.RequestAuthentication, src JwksSource) {
	for _, rule := range ra.GetJwtRules() {
		if rule.GetJwks() != "" {
			continue
		}
		key := JwksKey{Issuer: rule.GetIssuer(), URI: rule.GetJwksUri()}
		if _, done := pc.jwks[key]; done {
			continue
		}
		if src == nil {
			pc.jwks[key] = jwksResult{err: errNoJwksSource}
			continue
		}
		timeout := DefaultJwksTimeout
		if rule.GetTimeout() != nil {
			timeout = rule.GetTimeout().AsDuration()
		}
		keys, err := src.Jwks(key.Issuer, key.URI, timeout)
		pc.jwks[key] = jwksResult{keys: keys, err: err}
	}
}

type jwksError string

func (e jwksError) Error() string { return string(e) }

const errNoJwksSource = jwksError("no JWKS resolver: jwksUri is fetched by the control plane only")

// PublicOnlyJwks is the JWKS Istio inlines when an issuer's cannot be
// fetched (pilot/pkg/model/jwks_resolver.go): a public key whose private
// key was discarded, so no token of that issuer verifies (fail closed).
const PublicOnlyJwks = `{
  "keys": [
    {
      "kty": "RSA",
      "e": "AQAB",
      "n": "0xObjM0UvS_oaazjpEYlAbwctEJ4L8pH3OuTb7qth7gUwqet-EzQB4dgFdvSdMgrLnSncQGRjpEYz3F3viIbH-3EN3TxSlPNviHxeOdyiBVfumN8dMxbLvVJUpfNOnvmMxJcl-8NNjAwcOjk4otSALaYgYYyOPyvKtgVdrQr-FoubWX4yrjxW-MJ2-7OBeepUUNOsVwGV23YX03sVkkyvY3otRflkBcY3_HKpBxJl9wk2GyOShN4_PNUF9-vwfnvOXMbCDX-w4PTef4geeb_GiT40YCKHTKMSPVanGRn5GExIWmki-mmqh94-mPTJyBR74ShspL3BxPZitDL574T1w"
    }
  ]
}`

// LocalJwks is the JWKS to inline for rule: its jwks, or the one fetched
// for its issuer and jwksUri; when that fetch failed, PublicOnlyJwks (no
// token of the issuer verifies) and the error.
func (pc *PushContext) LocalJwks(rule *securityv1beta1.JWTRule) (string, error) {
	if rule.GetJwks() != "" {
		return rule.GetJwks(), nil
	}
	res, ok := pc.jwks[JwksKey{Issuer: rule.GetIssuer(), URI: rule.GetJwksUri()}]
	switch {
	case !ok:
		return PublicOnlyJwks, errNoJwksSource
	case res.err != nil || res.keys == "":
		if res.err == nil {
			res.err = jwksError("empty JWKS")
		}
		return PublicOnlyJwks, res.err
	}
	return res.keys, nil
}
