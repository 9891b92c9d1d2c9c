package model

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// SidecarScope is what a sidecar may reach by its Sidecar resource: the
// egress listeners whose hosts admit services and VirtualServices (each on
// its port, or on every port for the catch-all), the ingress listeners,
// and the outbound traffic policy. The zero scope (no Sidecar) admits
// everything exported to the proxy's namespace, as Istio does without one.
type SidecarScope struct {
	// Resource is the Sidecar in force, nil when none applies.
	Resource *config.Resource
	proxyNS  string
	egress   []egressListener
	ingress  []*networking.IstioIngressListener
	policy   *meshv1alpha1.MeshConfig_OutboundTrafficPolicy
}

// egressListener is one entry of spec.egress: the hosts it imports on its
// port, or on every port no other listener names when port is 0 (the
// catch-all, which validation keeps last), as Istio's
// IstioEgressListenerWrapper (pilot/pkg/model/sidecar.go).
type egressListener struct {
	port uint32
	// protocol is the listener port's protocol when it names one; the
	// traffic on that port is then that protocol whatever the service
	// port says (Istio builds the listener from the egress port).
	protocol registry.Protocol
	// bind is the IP the listener's own socket binds (with a port only).
	bind string
	// captureNone is captureMode NONE: with capture, the listener still
	// binds its socket (Istio's bindToPort for such a listener).
	captureNone bool
	hosts       []egressHost
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
	sc.ingress = spec.Ingress
	for _, l := range spec.Egress {
		el := egressListener{}
		if l.Port != nil {
			el.port, el.bind = l.Port.Number, l.Bind
			el.captureNone = l.CaptureMode == networking.CaptureMode_NONE
			if l.Port.Protocol != "" {
				el.protocol = registry.ProtocolFromPort(l.Port.Protocol, "")
			}
		}
		for _, h := range l.Hosts {
			ns, host, _ := strings.Cut(h, "/")
			if ns == "." {
				ns = p.Namespace
			}
			el.hosts = append(el.hosts, egressHost{ns: ns, host: host})
		}
		sc.egress = append(sc.egress, el)
	}
	if len(spec.Egress) == 0 {
		// A Sidecar without egress keeps Istio's default egress: all.
		sc.egress = []egressListener{{hosts: []egressHost{{ns: "*", host: "*"}}}}
	}
	return sc
}

// Ingress are the Sidecar's ingress listeners: when there are any they are
// the sidecar's only inbound ports, as in Istio.
func (sc *SidecarScope) Ingress() []*networking.IstioIngressListener {
	if sc == nil {
		return nil
	}
	return sc.ingress
}

// ServiceVisible reports whether the scope admits a service on any port:
// the catch-all listener admits its host, or a listener on one of its
// ports does (Istio's serviceMatchingListenerPort).
func (sc *SidecarScope) ServiceVisible(svc *registry.Service) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	for i := range sc.egress {
		l := &sc.egress[i]
		if _, ok := svc.Port(l.port); (l.port == 0 || ok) && l.admits(svc.Namespace, svc.Hostname) {
			return true
		}
	}
	return false
}

// ServicePortVisible reports whether the scope admits a service on one
// port: the listener for that port (else the catch-all) admits its host.
// A port no listener covers admits nothing: requests to it go to the
// outbound traffic policy's catch-all (502 under REGISTRY_ONLY,
// passthrough under ALLOW_ANY), as in Istio, where such a port gets no
// listener.
func (sc *SidecarScope) ServicePortVisible(svc *registry.Service, port uint32) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	l := sc.listenerFor(port)
	return l != nil && l.admits(svc.Namespace, svc.Hostname)
}

// PortProtocol is the protocol the egress listener on port gives its
// traffic, when that listener names one.
func (sc *SidecarScope) PortProtocol(port uint32) (registry.Protocol, bool) {
	if sc == nil || sc.Resource == nil {
		return "", false
	}
	if l := sc.listenerFor(port); l != nil && l.port != 0 && l.protocol != "" {
		return l.protocol, true
	}
	return "", false
}

// BoundEgress is an egress listener with a port and a bind address: the
// sidecar serves that port on a socket of its own at Bind:Port (Istio's
// bound egress listener), besides routing it by authority.
type BoundEgress struct {
	Bind string
	Port uint32
	// Protocol is the listener port's protocol, "" when it names none.
	Protocol registry.Protocol
	// CaptureNone is the listener's captureMode NONE: a captured sidecar
	// binds it anyway; otherwise a captured sidecar's listener is not
	// bound and takes the connections captured to Bind:Port.
	CaptureNone bool
}

// BoundEgress lists the egress listeners that bind an address, in order.
func (sc *SidecarScope) BoundEgress() []BoundEgress {
	if sc == nil || sc.Resource == nil {
		return nil
	}
	var out []BoundEgress
	for _, l := range sc.egress {
		if l.port != 0 && l.bind != "" {
			out = append(out, BoundEgress{Bind: l.bind, Port: l.port, Protocol: l.protocol, CaptureNone: l.captureNone})
		}
	}
	return out
}

// EgressBind is the bind address of the egress listener on port, "" when
// that port's listener binds none.
func (sc *SidecarScope) EgressBind(port uint32) string {
	if sc == nil || sc.Resource == nil {
		return ""
	}
	if l := sc.listenerFor(port); l != nil && l.port != 0 {
		return l.bind
	}
	return ""
}

// listenerFor is the egress listener that serves port: the one on that
// port, else the catch-all (Istio's GetEgressListenerForRDS); nil when
// neither exists.
func (sc *SidecarScope) listenerFor(port uint32) *egressListener {
	for i := range sc.egress {
		if l := &sc.egress[i]; l.port == 0 || l.port == port {
			return l
		}
	}
	return nil
}

// VirtualServiceVisible reports whether the scope admits a VirtualService:
// one of its hosts admitted from the VirtualService's namespace by any
// egress listener.
func (sc *SidecarScope) VirtualServiceVisible(vs *VirtualService) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	for i := range sc.egress {
		if sc.egress[i].admitsVirtualService(vs) {
			return true
		}
	}
	return false
}

// VirtualServicePortVisible reports whether the egress listener serving
// port admits a VirtualService.
func (sc *SidecarScope) VirtualServicePortVisible(vs *VirtualService, port uint32) bool {
	if sc == nil || sc.Resource == nil {
		return true
	}
	l := sc.listenerFor(port)
	return l != nil && l.admitsVirtualService(vs)
}

func (l *egressListener) admitsVirtualService(vs *VirtualService) bool {
	for _, h := range vs.Hosts {
		if l.admits(vs.Namespace, h) {
			return true
		}
	}
	return false
}

func (l *egressListener) admits(ns, host string) bool {
	for _, e := range l.hosts {
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
