package model

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	tpb "istio.io/api/telemetry/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// AffectsProxy reports whether proxy p's config can differ after ch, as
// Istio's DefaultProxyNeedsPush (pilot/pkg/xds/proxy_dependencies.go:
// filterRelevantUpdates, proxyDependentOnConfig) and
// SidecarScope.DependsOnConfig (pilot/pkg/model/sidecar.go) decide, for sluice's kinds. It is
// conservative: a kind it does not know, or a config whose old version it
// cannot tell (no PushOptions.Previous), affects everyone.
//
// A ztunnel is affected by every change: it holds every workload, service
// and AuthorizationPolicy of the mesh (istiod pushes its WDS on any
// registry or policy change: pilot/pkg/xds/proxy_dependencies.go, the
// ztunnel case of DefaultProxyNeedsPush).
func (pc *PushContext) AffectsProxy(p *Proxy, ch Change) bool {
	if ch.isFull() || p.Type == Ztunnel {
		return true
	}
	a := &affectsCheck{pc: pc, p: p}
	for key := range ch.Configs {
		if a.affects(key) {
			return true
		}
	}
	return false
}

// affectsCheck is one AffectsProxy call: the proxy's Sidecar scope and
// gateways are computed once, when a rule needs them.
type affectsCheck struct {
	pc       *PushContext
	p        *Proxy
	scope    *SidecarScope
	gateways map[string]bool
}

func (a *affectsCheck) affects(key ConfigKey) bool {
	old, cur, known := a.pc.versions(key)
	versions := make([]*config.Resource, 0, 2)
	for _, r := range []*config.Resource{old, cur} {
		if r != nil {
			versions = append(versions, r)
		}
	}
	root := a.pc.RootNamespace()
	switch key.Kind {
	case config.KindSidecar:
		// Sidecar resources scope sidecars only (routers have no scope):
		// the root namespace's default applies to every namespace.
		return a.p.Type == Sidecar && (key.Namespace == root || (key.Namespace == a.p.Namespace &&
			anySelects(versions, known, func(r *config.Resource) map[string]string {
				return r.Spec.(*networking.Sidecar).GetWorkloadSelector().GetLabels()
			}, a.p.Labels)))
	case config.KindGateway:
		return a.p.Type == Router && (!known || anyGatewaySelects(versions, a.p.Labels))
	case config.KindPeerAuthentication:
		// Every client's auto mTLS reads the service namespace's mode and
		// each endpoint's workload policy (xdsgen auto_mtls.go), so every
		// proxy may change, as Istio pushes PeerAuthentication to all.
		return true
	case config.KindAuthorizationPolicy, config.KindRequestAuthentication, config.KindTelemetry:
		return key.Namespace == root || (key.Namespace == a.p.Namespace && (!known || a.policyAttaches(versions)))
	case "EnvoyFilter", "WasmPlugin":
		return key.Namespace == root || key.Namespace == a.p.Namespace
	}
	if !known {
		return true
	}
	switch key.Kind {
	case config.KindVirtualService:
		return a.virtualService(versions)
	case config.KindDestinationRule:
		return a.destinationRule(versions)
	case config.KindService, config.KindServiceEntry, config.KindWorkloadEntry,
		config.KindPod, config.KindNode, config.KindEndpointSlice:
		return a.services(key, old, cur)
	case config.KindSecret:
		// Gateways' credentialName, any router's (conservative); a
		// sidecar's only through a DestinationRule's credentialName.
		return a.p.Type == Router || a.pc.drCredentials()
	case config.KindHTTPRoute, config.KindGRPCRoute, config.KindTCPRoute, config.KindTLSRoute,
		config.KindK8sGateway, config.KindGatewayClass:
		// Gateway API: converted per Gateway and route (pkg/gatewayapi);
		// routers, and every sidecar when a route is bound to the mesh.
		return a.p.Type == Router || a.pc.hasMeshGatewayAPI() || a.pc.prev.meshGatewayAPI
	}
	return true
}

// anySelects says a version's selector (from sel) is empty or matches labels.
func anySelects(versions []*config.Resource, known bool, sel func(*config.Resource) map[string]string, labels map[string]string) bool {
	if !known {
		return true
	}
	for _, r := range versions {
		if s := sel(r); len(s) == 0 || registry.LabelsMatch(s, labels) {
			return true
		}
	}
	return false
}

// anyGatewaySelects says a Gateway version selects a router with labels
// (GatewaysFor: a Gateway without selector selects none).
func anyGatewaySelects(versions []*config.Resource, labels map[string]string) bool {
	for _, r := range versions {
		if s := r.Spec.(*networking.Gateway).GetSelector(); len(s) > 0 && registry.LabelsMatch(s, labels) {
			return true
		}
	}
	return false
}

// policyAttaches says a version of a security or Telemetry policy of the
// proxy's namespace attaches to it (PolicyMatcher.Attaches).
func (a *affectsCheck) policyAttaches(versions []*config.Resource) bool {
	m := PolicyMatcherFor(a.p)
	for _, r := range versions {
		var t targetable
		switch spec := r.Spec.(type) {
		case *security.AuthorizationPolicy:
			t = spec
		case *security.RequestAuthentication:
			t = spec
		case *tpb.Telemetry:
			t = spec
		default:
			return true
		}
		if m.Attaches(r.Namespace, t) {
			return true
		}
	}
	return false
}

func (a *affectsCheck) sidecarScope() *SidecarScope {
	if a.scope == nil {
		a.scope = a.pc.SidecarScope(a.p)
	}
	return a.scope
}

// virtualService: a router is affected by a VirtualService bound to one of
// its Gateways, a sidecar by one bound to the mesh, exported to its
// namespace and admitted by its Sidecar scope (Istio's DependsOnConfig).
// A delegate (no hosts) may be anyone's: affected.
func (a *affectsCheck) virtualService(versions []*config.Resource) bool {
	for _, r := range versions {
		spec := r.Spec.(*networking.VirtualService)
		if len(spec.Hosts) == 0 {
			return true
		}
		vs := resolveVirtualService(r, spec)
		switch a.p.Type {
		case Router:
			if a.gateways == nil {
				a.gateways = map[string]bool{}
				for _, g := range a.pc.GatewaysForProxy(a.p.Labels, a.p.Namespace) {
					a.gateways[g.Namespace+"/"+g.Name] = true
				}
			}
			for _, g := range vs.Gateways {
				if a.gateways[g] {
					return true
				}
			}
		case Sidecar:
			if bound(vs.Gateways, GatewayMesh) && exportedTo(spec.ExportTo, r.Namespace, a.p.Namespace) &&
				a.sidecarScope().VirtualServiceVisible(vs) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// destinationRule: affected when the rule is one the proxy may look up
// (its own namespace's, or exported to it) for a host it has a cluster
// for: a service visible to it (and, for a sidecar, in its scope).
func (a *affectsCheck) destinationRule(versions []*config.Resource) bool {
	for _, r := range versions {
		spec := r.Spec.(*networking.DestinationRule)
		if r.Namespace != a.p.Namespace && !exportedTo(spec.ExportTo, r.Namespace, a.p.Namespace) {
			continue
		}
		host := config.ResolveHost(spec.Host, r.Namespace, "")
		for _, reg := range []*registry.Registry{a.pc.prev.registry, a.pc.Registry} {
			candidates := reg.ServicesForHost(host)
			if strings.HasPrefix(host, "*") {
				candidates = reg.Services()
			}
			for _, svc := range candidates {
				if config.HostMatches(host, svc.Hostname) && a.serviceVisible(svc) {
					return true
				}
			}
		}
	}
	return false
}

// services: a Service, ServiceEntry or WorkloadEntry affects the proxies
// that see one of the services it declares or gives endpoints to, in the
// old or the new registry, and a sidecar whose inbound listeners read its
// endpoints (InboundDependsOn); Gateway API backends are resolved against
// services, so routers and mesh routes too when there are any.
func (a *affectsCheck) services(key ConfigKey, old, cur *config.Resource) bool {
	feeds := key.Kind == config.KindWorkloadEntry || registry.IsKubeEndpointKind(key.Kind)
	if !feeds && (a.gatewayAPIReadsServices() || a.referenced(key, old, cur)) {
		return true
	}
	for _, v := range []struct {
		reg *registry.Registry
		res *config.Resource
	}{{a.pc.prev.registry, old}, {a.pc.Registry, cur}} {
		if v.res == nil {
			continue
		}
		var svcs []*registry.Service
		switch {
		case key.Kind == config.KindWorkloadEntry:
			svcs = v.reg.ServicesSelecting(key.Namespace, registry.WorkloadLabels(v.res))
		case feeds:
			svcs = v.reg.ServicesFedBy(key)
		default:
			svcs = v.reg.ServicesOf(key)
		}
		for _, svc := range svcs {
			if a.serviceVisible(svc) {
				return true
			}
		}
	}
	return a.p.Type == Sidecar && (endpointsAtInbound(a.pc.prev.registry, old, a.p) || endpointsAtInbound(a.pc.Registry, cur, a.p))
}

// referenced says a service the Service or ServiceEntry declared, before
// or after, has a hostname generation looks up for every proxy
// (referencedHosts): conservatively, everyone is affected.
func (a *affectsCheck) referenced(key ConfigKey, old, cur *config.Resource) bool {
	for _, v := range []struct {
		reg  *registry.Registry
		res  *config.Resource
		refs map[string]bool
	}{{a.pc.prev.registry, old, a.pc.prev.referenced}, {a.pc.Registry, cur, a.pc.referencedHosts()}} {
		if v.res == nil {
			continue
		}
		for _, svc := range v.reg.ServicesOf(key) {
			if v.refs[svc.Hostname] || a.pc.providerService(svc.Hostname) {
				return true
			}
		}
	}
	return false
}

// gatewayAPIReadsServices: Gateway API routes resolve their backends
// against the registry (gatewayapi backends.go), so a service change may
// change the routes converted for routers, and for sidecars when a route
// is bound to the mesh.
func (a *affectsCheck) gatewayAPIReadsServices() bool {
	if a.p.Type == Router {
		return a.pc.hasGatewayAPI() || a.pc.prev.gatewayAPI
	}
	return a.pc.hasMeshGatewayAPI() || a.pc.prev.meshGatewayAPI
}

func (a *affectsCheck) serviceVisible(svc *registry.Service) bool {
	if !svc.VisibleTo(a.p.Namespace) {
		return false
	}
	return a.p.Type != Sidecar || a.sidecarScope().ServiceVisible(svc)
}

// drCredentials says a DestinationRule of this push names a
// credentialName (a sidecar reads that Secret: xdsgen cluster_tls.go).
func (pc *PushContext) drCredentials() bool {
	for _, dr := range pc.destRules {
		if hasCredential(dr.Spec.GetTrafficPolicy()) {
			return true
		}
		for _, ss := range dr.Spec.Subsets {
			if hasCredential(ss.GetTrafficPolicy()) {
				return true
			}
		}
	}
	return false
}

func hasCredential(tp *networking.TrafficPolicy) bool {
	if tp.GetTls().GetCredentialName() != "" {
		return true
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetTls().GetCredentialName() != "" {
			return true
		}
	}
	return false
}
