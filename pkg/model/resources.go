package model

import (
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// ResourcesOf returns this push's resources of one kind, sorted by
// namespace and name (generators that read resources directly, such as
// the workload API's, iterate them in this deterministic order).
func (pc *PushContext) ResourcesOf(kind config.Kind) []*config.Resource {
	var out []*config.Resource
	for k, r := range pc.resources {
		if k.Kind == kind {
			out = append(out, r)
		}
	}
	config.SortResources(out)
	return out
}

// AuthorizationPolicies returns every AuthorizationPolicy of the push,
// sorted by namespace and name.
func (pc *PushContext) AuthorizationPolicies() []*AuthorizationPolicy {
	var out []*AuthorizationPolicy
	for _, r := range pc.ResourcesOf(config.KindAuthorizationPolicy) {
		if spec, ok := r.Spec.(*securityv1beta1.AuthorizationPolicy); ok {
			out = append(out, &AuthorizationPolicy{Resource: r, Spec: spec})
		}
	}
	return out
}

// Resource returns this push's resource of a key, or nil.
func (pc *PushContext) Resource(key ConfigKey) *config.Resource { return pc.resources[key] }
