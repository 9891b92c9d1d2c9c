package xdsgen

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/types/known/emptypb"
	securityv1beta1 "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// PeerAuthentication as ztunnel enforces it, as istiod converts it
// (pilot/pkg/serviceregistry/ambient/policies.go PolicyCollections:
// DefaultPolicy and PeerAuthDerivedPolicies; authorization.go
// convertPeerAuthentication, convertedSelectorPeerAuthentications): a
// static STRICT policy (DENY connections without a peer identity) served
// whenever any PeerAuthentication exists and named by every workload
// whose effective mode is STRICT, and a DENY policy per workload
// PeerAuthentication with port-level exceptions.

const (
	staticStrictPolicyName            = "istio_converted_static_strict"
	convertedPeerAuthenticationPrefix = "converted_peer_authentication_"
)

// peerAuthn is one PeerAuthentication with its spec.
type peerAuthn struct {
	res  *config.Resource
	spec *securityv1beta1.PeerAuthentication
}

func (p *peerAuthn) mtls() *securityv1beta1.PeerAuthentication_MutualTLS {
	if p == nil {
		return nil
	}
	return p.spec.GetMtls()
}

// workloadLevel: a PeerAuthentication with a selector naming labels.
func (p *peerAuthn) workloadLevel() bool { return len(p.spec.GetSelector().GetMatchLabels()) > 0 }

// peerAuthns indexes the push's PeerAuthentications by namespace, oldest
// first.
type peerAuthns struct {
	rootNS string
	byNS   map[string][]*peerAuthn
}

func newPeerAuthns(rootNS string, resources []*config.Resource) *peerAuthns {
	pa := &peerAuthns{rootNS: rootNS, byNS: map[string][]*peerAuthn{}}
	sorted := slices.Clone(resources)
	config.SortByCreation(sorted)
	for _, r := range sorted {
		if spec, ok := r.Spec.(*securityv1beta1.PeerAuthentication); ok {
			pa.byNS[r.Namespace] = append(pa.byNS[r.Namespace], &peerAuthn{res: r, spec: spec})
		}
	}
	return pa
}

func (pa *peerAuthns) any() bool { return len(pa.byNS) > 0 }

// oldest is istiod's getOldestPeerAuthn over a namespace's policies
// without a selector (its PeerAuthByNamespace index).
func (pa *peerAuthns) oldest(ns string) *peerAuthn {
	for _, p := range pa.byNS[ns] {
		if p.spec.GetSelector() == nil {
			return p
		}
	}
	return nil
}

// authorizations are the Authorizations PeerAuthentications add: the
// static STRICT one and the converted workload policies.
func (pa *peerAuthns) authorizations() []*security.Authorization {
	if !pa.any() {
		return nil
	}
	out := []*security.Authorization{{Name: staticStrictPolicyName, Namespace: pa.rootNS, Scope: security.Scope_WORKLOAD_SELECTOR,
		Action: security.Action_DENY, Groups: []*security.Group{{Rules: []*security.Rules{noPeerIdentity()}}}}}
	for _, ns := range slices.Sorted(maps.Keys(pa.byNS)) {
		for _, p := range pa.byNS[ns] {
			if a := pa.convert(p); a != nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// noPeerIdentity matches a connection without a peer principal.
func noPeerIdentity() *security.Rules {
	return &security.Rules{Matches: []*security.Match{{NotPrincipals: []*security.StringMatch{presence()}}}}
}

func presence() *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}
}

// forWorkload is istiod's fetchPeerAuthentications then
// convertedSelectorPeerAuthentications: the converted policy names a
// workload refers to.
func (pa *peerAuthns) forWorkload(ns string, labels map[string]string) []string {
	if !pa.any() {
		return nil
	}
	var meshCfg, nsCfg, wlCfg *peerAuthn
	for _, p := range pa.byNS[ns] {
		switch {
		case !p.workloadLevel() && ns == pa.rootNS:
			meshCfg = firstPA(meshCfg, p)
		case !p.workloadLevel():
			nsCfg = firstPA(nsCfg, p)
		case ns != pa.rootNS && registry.LabelsMatch(p.spec.GetSelector().GetMatchLabels(), labels):
			wlCfg = firstPA(wlCfg, p)
		}
	}
	if ns != pa.rootNS {
		for _, p := range pa.byNS[pa.rootNS] {
			if p.spec.GetSelector() == nil {
				meshCfg = firstPA(meshCfg, p)
			}
		}
	}
	strict := meshCfg != nil && isStrict(meshCfg.mtls())
	if nsCfg != nil && !isUnset(nsCfg.mtls()) {
		strict = isStrict(nsCfg.mtls())
	}
	portKey := ""
	if wlCfg != nil {
		strict, portKey = pa.workloadEffective(wlCfg, strict)
	}
	var out []string
	if strict {
		out = append(out, pa.rootNS+"/"+staticStrictPolicyName)
	}
	if portKey != "" {
		out = append(out, portKey)
	}
	slices.Sort(out)
	return out
}

// firstPA keeps the oldest (the lists are oldest first).
func firstPA(have, p *peerAuthn) *peerAuthn {
	if have != nil {
		return have
	}
	return p
}

// workloadEffective is the workload part of
// convertedSelectorPeerAuthentications: whether the static STRICT
// policy applies, and the converted workload policy to name, if any.
func (pa *peerAuthns) workloadEffective(wl *peerAuthn, strict bool) (bool, string) {
	spec := wl.spec
	if isStrict(spec.GetMtls()) {
		strict = true
	}
	if isPermissive(spec.GetMtls()) || isDisable(spec.GetMtls()) {
		strict = false
	}
	if spec.GetPortLevelMtls() == nil {
		return strict, ""
	}
	key := wl.res.Namespace + "/" + convertedPeerAuthenticationPrefix + wl.res.Name
	anyPort := func(f func(*securityv1beta1.PeerAuthentication_MutualTLS) bool) bool {
		for _, m := range spec.GetPortLevelMtls() {
			if f(m) {
				return true
			}
		}
		return false
	}
	switch spec.GetMtls().GetMode() {
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		if anyPort(func(m *securityv1beta1.PeerAuthentication_MutualTLS) bool { return isPermissive(m) || isDisable(m) }) {
			return false, key
		}
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE, securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		if anyPort(isStrict) {
			return strict, key
		}
	default:
		if strict {
			if anyPort(isPermissive) {
				return false, key
			}
		} else if anyPort(isStrict) {
			return false, key
		}
		if !strict {
			return false, ""
		}
	}
	return strict, ""
}

// convert is istiod's convertPeerAuthentication: a workload policy with
// port-level modes becomes a DENY policy (nil when the static STRICT
// policy already says it all).
func (pa *peerAuthns) convert(p *peerAuthn) *security.Authorization {
	spec := p.spec
	if p.res.Namespace == pa.rootNS || spec.GetSelector() == nil || len(spec.GetPortLevelMtls()) == 0 {
		return nil
	}
	nsCfg, rootCfg := pa.oldest(p.res.Namespace), pa.oldest(pa.rootNS)
	mode := spec.GetMtls().GetMode()
	var rules []*security.Rules
	var groups []*security.Group
	if mode == securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
		rules = append(rules, noPeerIdentity())
	}
	nonStrictPort := false
	for _, port := range slices.Sorted(maps.Keys(spec.GetPortLevelMtls())) {
		m := spec.GetPortLevelMtls()[port]
		switch {
		case isStrict(m):
			if isStrict(spec.GetMtls()) || (isUnset(spec.GetMtls()) && nsCfg != nil && isStrict(nsCfg.mtls())) ||
				((nsCfg == nil || isUnset(nsCfg.mtls())) && rootCfg != nil && isStrict(rootCfg.mtls())) {
				continue // the parent policy enforces it
			}
			groups = append(groups, &security.Group{Rules: []*security.Rules{{Matches: []*security.Match{{
				NotPrincipals: []*security.StringMatch{presence()}, DestinationPorts: []uint32{port}}}}}})
		case isPermissive(m) || isDisable(m):
			if mode == securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE || mode == securityv1beta1.PeerAuthentication_MutualTLS_DISABLE {
				continue
			}
			if mode == securityv1beta1.PeerAuthentication_MutualTLS_UNSET && ((nsCfg != nil && !isStrict(nsCfg.mtls())) ||
				(nsCfg == nil && rootCfg != nil && !isStrict(rootCfg.mtls())) || (nsCfg == nil && rootCfg == nil)) {
				continue
			}
			nonStrictPort = true
			rules = append(rules, &security.Rules{Matches: []*security.Match{{NotDestinationPorts: []uint32{port}}}})
		}
	}
	if mode == securityv1beta1.PeerAuthentication_MutualTLS_STRICT && !nonStrictPort {
		return nil
	}
	if len(rules) == 0 && len(groups) == 0 {
		return nil
	}
	mergeStrict := (rootCfg != nil && isStrict(rootCfg.mtls()) && (nsCfg == nil || isUnset(nsCfg.mtls()) || isStrict(nsCfg.mtls()))) ||
		(nsCfg != nil && isStrict(nsCfg.mtls()))
	if mergeStrict && nonStrictPort {
		rules = append(rules, noPeerIdentity())
	}
	if len(rules) > 0 {
		groups = append(groups, &security.Group{Rules: rules})
	}
	return &security.Authorization{Name: convertedPeerAuthenticationPrefix + p.res.Name, Namespace: p.res.Namespace,
		Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_DENY, Groups: groups}
}

func isUnset(m *securityv1beta1.PeerAuthentication_MutualTLS) bool {
	return m == nil || m.GetMode() == securityv1beta1.PeerAuthentication_MutualTLS_UNSET
}

func isStrict(m *securityv1beta1.PeerAuthentication_MutualTLS) bool {
	return m != nil && m.GetMode() == securityv1beta1.PeerAuthentication_MutualTLS_STRICT
}

func isPermissive(m *securityv1beta1.PeerAuthentication_MutualTLS) bool {
	return m != nil && m.GetMode() == securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
}

func isDisable(m *securityv1beta1.PeerAuthentication_MutualTLS) bool {
	return m != nil && m.GetMode() == securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
}
