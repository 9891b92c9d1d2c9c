package model

import (
	"maps"
	"slices"

	security "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// MTLSMode is the effective mutual TLS mode of a workload port, as
// Istio's model.MutualTLSMode (pilot/pkg/model/authentication.go).
type MTLSMode int

// The modes. MTLSUnknown means no policy said anything (a namespace with
// no mesh or namespace level PeerAuthentication).
const (
	MTLSUnknown MTLSMode = iota
	MTLSDisable
	MTLSPermissive
	MTLSStrict
)

func (m MTLSMode) String() string {
	return [...]string{"UNKNOWN", "DISABLE", "PERMISSIVE", "STRICT"}[m]
}

// mtlsModeOf is Istio's ConvertToMutualTLSMode.
func mtlsModeOf(m security.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case security.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	}
	return MTLSUnknown
}

func unsetMTLS(m *security.PeerAuthentication_MutualTLS) bool {
	return m == nil || m.Mode == security.PeerAuthentication_MutualTLS_UNSET
}

// MergedPeerAuthentication is the effective PeerAuthentication of one
// workload: its mode, the per-port overrides (keyed by workload port), and
// the policies that applied, most general first (for `sluice status`).
type MergedPeerAuthentication struct {
	Mode    MTLSMode
	PerPort map[uint32]MTLSMode
	// From names the policies composed ("mesh", "namespace", "workload"
	// level, each as namespace/name), for explanations.
	From []string
}

// ModeForPort is Istio's GetMutualTLSModeForPort: the port-level mode of
// the workload port, else the workload's.
func (m MergedPeerAuthentication) ModeForPort(port uint32) MTLSMode {
	if mode, ok := m.PerPort[port]; ok {
		return mode
	}
	return m.Mode
}

// ModeForPorts is ModeForPort for an inbound port known by several
// numbers, most specific first (see WorkloadPorts): the first with a
// port-level mode decides, else the workload's mode.
func (m MergedPeerAuthentication) ModeForPorts(ports []uint32) MTLSMode {
	for _, p := range ports {
		if mode, ok := m.PerPort[p]; ok {
			return mode
		}
	}
	return m.Mode
}

// WorkloadPorts are the numbers portLevelMtls may use for the sidecar
// inbound port at host:port: the port itself (the endpoint port a
// WorkloadEntry's port map names, which is how Istio keys a VM's ports),
// then the targetPort of each service port whose endpoint is there (the
// container port the inbound port stands in for in local mode, which is
// how Istio keys a pod's ports), in service order. host 0.0.0.0 or ::
// matches any endpoint address.
func (pc *PushContext) WorkloadPorts(host string, port uint32) []uint32 {
	out := []uint32{port}
	for _, svc := range pc.Services() {
		for _, sp := range svc.Ports {
			if sp.TargetPort == 0 || slices.Contains(out, sp.TargetPort) {
				continue
			}
			for _, ep := range pc.Endpoints(svc, sp.Number) {
				if ep.Port == port && (ep.Address == host || host == "0.0.0.0" || host == "::") {
					out = append(out, sp.TargetPort)
					break
				}
			}
		}
	}
	return out
}

// peerAuthentications indexes PeerAuthentications by namespace, oldest
// first, keeping only the oldest policy without selector per namespace
// as Istio's addPeerAuthentication does; with the mesh-wide and
// per-namespace modes Istio's GetNamespaceMutualTLSMode answers.
type peerAuthentications struct {
	root        string
	byNamespace map[string][]*config.Resource
	global      MTLSMode
	namespace   map[string]MTLSMode
}

func newPeerAuthentications(root string, all []*config.Resource) *peerAuthentications {
	if root == "" {
		root = meshconfig.DefaultRootNamespace
	}
	pa := &peerAuthentications{root: root, byNamespace: map[string][]*config.Resource{}, namespace: map[string]MTLSMode{}}
	config.SortByCreation(all)
	seen := map[string]bool{}
	found := map[string]security.PeerAuthentication_MutualTLS_Mode{}
	for _, r := range all {
		spec := r.Spec.(*security.PeerAuthentication)
		if len(spec.GetSelector().GetMatchLabels()) == 0 {
			if seen[r.Namespace] {
				continue // a younger namespace/mesh level policy: Istio ignores it
			}
			seen[r.Namespace] = true
			mode := spec.GetMtls().GetMode()
			if r.Namespace == root {
				pa.global = MTLSPermissive // UNSET is PERMISSIVE for the mesh policy
				if mode != security.PeerAuthentication_MutualTLS_UNSET {
					pa.global = mtlsModeOf(mode)
				}
			} else {
				found[r.Namespace] = mode
			}
		}
		pa.byNamespace[r.Namespace] = append(pa.byNamespace[r.Namespace], r)
	}
	inherited := pa.global
	if inherited == MTLSUnknown {
		inherited = MTLSPermissive
	}
	for ns, mode := range found {
		pa.namespace[ns] = inherited
		if mode != security.PeerAuthentication_MutualTLS_UNSET {
			pa.namespace[ns] = mtlsModeOf(mode)
		}
	}
	return pa
}

// RootNamespace is MeshConfig rootNamespace, istio-system by default.
func (pc *PushContext) RootNamespace() string {
	if pc.Mesh != nil && pc.Mesh.RootNamespace != "" {
		return pc.Mesh.RootNamespace
	}
	return meshconfig.DefaultRootNamespace
}

// NamespaceMTLSMode is Istio's GetNamespaceMutualTLSMode: the mode the
// namespace (or mesh) level PeerAuthentication gives namespace ns, or
// MTLSUnknown when there is neither.
func (pc *PushContext) NamespaceMTLSMode(ns string) MTLSMode {
	pa := pc.peerAuthentications()
	if mode, ok := pa.namespace[ns]; ok {
		return mode
	}
	return pa.global
}

// peerAuthentications is the index, empty for a PushContext not built by
// NewPushContext.
func (pc *PushContext) peerAuthentications() *peerAuthentications {
	if pc.peerAuthn == nil {
		return newPeerAuthentications(pc.RootNamespace(), nil)
	}
	return pc.peerAuthn
}

// PeerAuthenticationFor composes the effective PeerAuthentication of the
// workload with labels in namespace ns, as Istio's
// getConfigsForWorkload (the policies of ns and the root namespace whose
// selector is a subset of labels) and ComposePeerAuthentication
// (pilot/pkg/security/authn/policy_applier.go): mesh level (root
// namespace, no selector), then namespace level, then workload level (a
// selector, not in the root namespace), each replacing the mode of the one
// before unless UNSET; the oldest policy wins within a level (then the
// name); portLevelMtls comes from the workload level policy only, an
// UNSET port taking the workload's mode. No policy: PERMISSIVE.
func (pc *PushContext) PeerAuthenticationFor(ns string, labels map[string]string) MergedPeerAuthentication {
	pa := pc.peerAuthentications()
	var mesh, namespace, workload *config.Resource
	for _, lookup := range slices.Compact([]string{ns, pa.root}) {
		for _, r := range pa.byNamespace[lookup] {
			sel := r.Spec.(*security.PeerAuthentication).GetSelector().GetMatchLabels()
			if !registry.LabelsMatch(sel, labels) {
				continue
			}
			switch {
			case len(sel) == 0 && r.Namespace == pa.root:
				mesh = older(mesh, r)
			case len(sel) == 0:
				namespace = older(namespace, r)
			case r.Namespace != pa.root:
				workload = older(workload, r)
			}
		}
	}
	out := MergedPeerAuthentication{Mode: MTLSPermissive}
	for _, level := range []struct {
		name string
		r    *config.Resource
	}{{"mesh", mesh}, {"namespace", namespace}, {"workload", workload}} {
		if level.r == nil {
			continue
		}
		out.From = append(out.From, level.name+" "+level.r.Namespace+"/"+level.r.Name)
		if mtls := level.r.Spec.(*security.PeerAuthentication).Mtls; !unsetMTLS(mtls) {
			out.Mode = mtlsModeOf(mtls.Mode)
		}
	}
	if workload == nil {
		return out
	}
	if ports := workload.Spec.(*security.PeerAuthentication).PortLevelMtls; ports != nil {
		out.PerPort = make(map[uint32]MTLSMode, len(ports))
		for _, port := range slices.Sorted(maps.Keys(ports)) {
			out.PerPort[port] = out.Mode
			if !unsetMTLS(ports[port]) {
				out.PerPort[port] = mtlsModeOf(ports[port].Mode)
			}
		}
	}
	return out
}

// older keeps the oldest of two policies (creation time, then name, then
// namespace: Istio's sortConfigByCreationTime).
func older(cur, r *config.Resource) *config.Resource {
	if cur == nil || config.OlderThan(r, cur) {
		return r
	}
	return cur
}
