package model

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// SidecarScope is what a sidecar may reach by its Sidecar resource: the
// egress hosts that admit services and VirtualServices, and the outbound
// traffic policy. The zero scope (no Sidecar) admits everything exported
// to the proxy's namespace, as Istio does without one.
type SidecarScope struct {
	// Resource is the Sidecar in force, nil when none applies.
	Resource *config.Resource
	proxyNS  string
	hosts    []egressHost
	policy   *meshv1alpha1.MeshConfig_OutboundTrafficPolicy
}

type egressHost struct{ ns, host string }

// SidecarScope picks the Sidecar for a proxy as Istio does: in the proxy's
// namespace one whose workloadSelector matches its labels, else the one
// without a selector; else the root namespace's Sidecar without a
// selector. Ties go to the oldest.
func (pc *PushContext) SidecarScope(p *Proxy) *SidecarScope {
	root := "istio-system"
	if pc.Mesh != nil && pc.Mesh.RootNamespace != "" {
		root = pc.Mesh.RootNamespace
	}
	var selected, namespaceWide, rootWide *config.Resource
	for _, r := range pc.sidecars {
		spec := r.Spec.(*networking.Sidecar)
		sel := spec.GetWorkloadSelector().GetLabels()
		switch {
		case r.Namespace == p.Namespace && len(sel) > 0 && registry.LabelsMatch(sel, p.Labels):
			if selected == nil {
				selected = r
			}
		case r.Namespace == p.Namespace && len(sel) == 0:
			if namespaceWide == nil {
				namespaceWide = r
			}
		case r.Namespace == root && len(sel) == 0:
			if rootWide == nil {
				rootWide = r
			}
		}
	}
	sc := &SidecarScope{proxyNS: p.Namespace}
	for _, r := range []*config.Resource{selected, namespaceWide, rootWide} {
		if r != nil {
			sc.Resource = r
			break
		}
	}
	if sc.Resource == nil {
		return sc
	}
	spec := sc.Resource.Spec.(*networking.Sidecar)
	if p := spec.OutboundTrafficPolicy; p != nil {
		mode := meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY
		if p.Mode == networking.OutboundTrafficPolicy_REGISTRY_ONLY {
			mode = meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
		}
		sc.policy = &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: mode}
	}
	for _, l := range spec.Egress {
		for _, h := range l.Hosts {
			ns, host, _ := strings.Cut(h, "/")
			if ns == "." {
				ns = p.Namespace
			}
			sc.hosts = append(sc.hosts, egressHost{ns: ns, host: host})
		}
	}
	if len(spec.Egress) == 0 {
		// A Sidecar without egress keeps Istio's default egress: all.
		sc.hosts = []egressHost{{ns: "*", host: "*"}}
	}
	return sc
}

// ServiceVisible reports whether the scope admits a service.
func (sc *SidecarScope) ServiceVisible(svc *registry.Service) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	return sc.admits(svc.Namespace, svc.Hostname)
}

// VirtualServiceVisible reports whether the scope admits a VirtualService:
// one of its hosts admitted from the VirtualService's namespace.
func (sc *SidecarScope) VirtualServiceVisible(vs *VirtualService) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	for _, h := range vs.Hosts {
		if sc.admits(vs.Namespace, h) {
			return true
		}
	}
	return false
}

func (sc *SidecarScope) admits(ns, host string) bool {
	for _, e := range sc.hosts {
		if e.ns == "~" || (e.ns != "*" && e.ns != ns) {
			continue
		}
		if _, ok := HostIntersection(e.host, host); ok {
			return true
		}
	}
	return false
}

// OutboundTrafficPolicy is the Sidecar's policy if it sets one, else the
// mesh's.
func (sc *SidecarScope) OutboundTrafficPolicy(mesh *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig_OutboundTrafficPolicy {
	if sc != nil && sc.policy != nil {
		return sc.policy
	}
	return mesh.GetOutboundTrafficPolicy()
}
