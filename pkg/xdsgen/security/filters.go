// Package security translates the AuthorizationPolicies and
// RequestAuthentications applying to a workload into Envoy's
// envoy.filters.http.jwt_authn and envoy.filters.http.rbac /
// envoy.filters.network.rbac filters, exactly as istiod does
// (pilot/pkg/security/authz/builder, pilot/pkg/security/authn). It needs
// only a push context and the workload, so `sluice authz check` can use
// it without a running control plane.
package security

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Envoy's filter names.
const (
	HTTPRBACFilter    = "envoy.filters.http.rbac"
	NetworkRBACFilter = "envoy.filters.network.rbac"
)

// Workload is what filters are generated for.
type Workload struct {
	Namespace string
	Labels    map[string]string
	// Gateway is set for router proxies: their jwt_authn clears the route
	// cache (Istio's JwtFilter(proxy.Type != SidecarProxy)).
	Gateway bool
}

// WorkloadOf is the workload a proxy serves.
func WorkloadOf(p *model.Proxy) Workload {
	return Workload{Namespace: p.Namespace, Labels: p.Labels, Gateway: p.Type == model.Router}
}

// Filters are a workload's security filters for one listener kind.
type Filters struct {
	// HTTP goes first in every inbound (sidecar) or gateway connection
	// manager: jwt_authn, then one rbac filter per action present (AUDIT,
	// DENY, ALLOW), Istio's order; fault, CORS and the router follow.
	HTTP []*hcm.HttpFilter
	// Network goes before tcp_proxy in inbound TCP (and gateway TCP)
	// filter chains: one rbac filter per action present.
	Network []*listener.Filter
	// Notes are what istiod logs while building them: rules dropped on
	// TCP chains, issuers whose JWKS is unavailable.
	Notes []string
}

func (w Workload) matcher() model.PolicyMatcher {
	return model.PolicyMatcher{Namespace: w.Namespace, Labels: w.Labels}
}

func newRBACBuilder(push *model.PushContext, forTCP bool) *rbacBuilder {
	td := push.Mesh.GetTrustDomain()
	if td == "" {
		td = meshconfig.DefaultClusterLocalDomain
	}
	return &rbacBuilder{td: newTrustDomainBundle(td, push.Mesh.GetTrustDomainAliases()), forTCP: forTCP, useAuthenticated: true}
}

// HTTPFilters are the filters for the workload's HTTP connection
// managers.
func HTTPFilters(push *model.PushContext, w Workload) (Filters, error) {
	var out Filters
	jwt, notes := jwtConfig(push, push.RequestAuthenticationsFor(w.matcher()), w.Gateway)
	out.Notes = notes
	if jwt != nil {
		typed, err := toAny(jwt)
		if err != nil {
			return out, fmt.Errorf("jwt_authn: %w", err)
		}
		out.HTTP = append(out.HTTP, &hcm.HttpFilter{Name: JwtFilterName, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: typed}})
	}
	b := newRBACBuilder(push, false)
	for _, r := range b.all(push.AuthorizationPoliciesFor(w.matcher())) {
		typed, err := toAny(&rbachttp.RBAC{Rules: r.rules, ShadowRules: r.shadow, ShadowRulesStatPrefix: shadowStatPrefix(r.shadow)})
		if err != nil {
			return out, fmt.Errorf("rbac: %w", err)
		}
		out.HTTP = append(out.HTTP, &hcm.HttpFilter{Name: HTTPRBACFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: typed}})
	}
	out.Notes = append(out.Notes, b.notes...)
	return out, nil
}

// NetworkFilters are the filters for the workload's TCP filter chains,
// with Istio's TCP semantics: an ALLOW rule using an HTTP-only attribute
// never matches (it is dropped), a DENY or AUDIT rule drops only that
// condition.
func NetworkFilters(push *model.PushContext, w Workload) (Filters, error) {
	var out Filters
	b := newRBACBuilder(push, true)
	for _, r := range b.all(push.AuthorizationPoliciesFor(w.matcher())) {
		typed, err := toAny(&rbactcp.RBAC{Rules: r.rules, StatPrefix: TCPStatPrefix, ShadowRules: r.shadow,
			ShadowRulesStatPrefix: shadowStatPrefix(r.shadow)})
		if err != nil {
			return out, fmt.Errorf("rbac: %w", err)
		}
		out.Network = append(out.Network, &listener.Filter{Name: NetworkRBACFilter, ConfigType: &listener.Filter_TypedConfig{TypedConfig: typed}})
	}
	out.Notes = b.notes
	return out, nil
}

// ForPort is what a listener of the workload serving a port of protocol
// carries: the HTTP filters on HTTP protocols, the network filters
// otherwise (for `sluice authz check`, which has no control plane).
func ForPort(push *model.PushContext, w Workload, protocol registry.Protocol) (Filters, error) {
	if protocol.IsHTTP() {
		return HTTPFilters(push, w)
	}
	return NetworkFilters(push, w)
}
