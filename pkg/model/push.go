package model

import (
	"sort"
	"strings"
	"sync"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// GatewayMesh is the reserved gateway name meaning "all sidecars".
const GatewayMesh = "mesh"

// VirtualService is a VirtualService with its hosts and gateways resolved.
type VirtualService struct {
	*config.Resource
	Spec *networking.VirtualService
	// Hosts are fully qualified (short names expanded in the resource's namespace).
	Hosts []string
	// Gateways are "mesh" or "namespace/name".
	Gateways []string
	// GatewayAPI is set when the VirtualService was converted from a
	// Kubernetes Gateway API route: the semantics it has beyond Istio's.
	GatewayAPI *gatewayapi.RouteSemantics
}

// DestinationRule is a DestinationRule with its host resolved.
type DestinationRule struct {
	*config.Resource
	Spec *networking.DestinationRule
	Host string
}

// PushContext is the immutable, indexed view of config and registry that
// one push generates from. Build it once per push with NewPushContext.
type PushContext struct {
	// Version names this push; it increases with every push.
	Version string
	Mesh    *meshv1alpha1.MeshConfig
	*registry.Registry

	virtualServices []*VirtualService
	delegates       map[config.Key]*VirtualService
	destRules       []*DestinationRule
	gateways        map[config.Key]*config.Resource
	secrets         map[config.Key]*config.Secret
	gatewayAPI      *gatewayapi.Status
	sidecars        []*config.Resource // oldest first

	// Security policies by namespace, oldest first (security.go), and the
	// JWKS fetched for their jwtRules.
	authzPolicies map[string][]*AuthorizationPolicy
	requestAuthns map[string][]*RequestAuthentication
	jwks          map[JwksKey]jwksResult
	peerAuthn     *peerAuthentications

	// Telemetry resources by namespace (telemetry.go).
	telemetry *telemetries

	// resources are this push's configs by key, and prev what it keeps
	// of the push it was derived from (change.go).
	resources map[ConfigKey]*config.Resource
	prev      *previous
	refsOnce  sync.Once
	refs      map[string]bool
}

// PushOptions are the inputs of a push.
type PushOptions struct {
	Version   string
	Mesh      *meshv1alpha1.MeshConfig
	Resources []*config.Resource
	// Jwks fetches the JWKS of RequestAuthentication jwtRules that name
	// a jwksUri (or only an issuer); nil: those fail closed.
	Jwks JwksSource
	// Previous is the push context of the last push, and Change what
	// changed since (change.go): the registry is then derived from the
	// previous one, and AffectsProxy can tell old versions of changed
	// configs. Both optional.
	Previous *PushContext
	Change   Change
}

// NewPushContext indexes resources for generation.
func NewPushContext(opts PushOptions) *PushContext {
	pc := &PushContext{
		Version:   opts.Version,
		Mesh:      opts.Mesh,
		Registry:  newRegistry(opts),
		delegates: map[config.Key]*VirtualService{},
		resources: make(map[ConfigKey]*config.Resource, len(opts.Resources)),
		gateways:  map[config.Key]*config.Resource{},
		secrets:   map[config.Key]*config.Secret{},
		jwks:      map[JwksKey]jwksResult{},
	}
	pc.indexSecurity(opts.Resources, opts.Jwks)
	pc.indexTelemetry(opts.Resources)
	var peerAuthns []*config.Resource
	for _, r := range opts.Resources {
		pc.resources[r.Key()] = r
		switch spec := r.Spec.(type) {
		case *networking.VirtualService:
			vs := resolveVirtualService(r, spec)
			if len(spec.Hosts) == 0 {
				pc.delegates[r.Key()] = vs
			} else {
				pc.virtualServices = append(pc.virtualServices, vs)
			}
		case *networking.DestinationRule:
			pc.destRules = append(pc.destRules, &DestinationRule{Resource: r, Spec: spec,
				Host: config.ResolveHost(spec.Host, r.Namespace, "")})
		case *networking.Gateway:
			pc.gateways[r.Key()] = r
		case *config.Secret:
			pc.secrets[r.Key()] = spec
		case *networking.Sidecar:
			pc.sidecars = append(pc.sidecars, r)
		case *security.PeerAuthentication:
			peerAuthns = append(peerAuthns, r)
		}
	}
	pc.peerAuthn = newPeerAuthentications(pc.RootNamespace(), peerAuthns)
	// Kubernetes Gateway API resources become Istio Gateways and
	// VirtualServices, indexed like the ones users write.
	gw := gatewayapi.Convert(opts.Resources, gatewayapi.Options{Registry: pc.Registry})
	pc.gatewayAPI = gw.Status
	for _, g := range gw.Gateways {
		pc.gateways[g.Key()] = g
	}
	for _, v := range gw.VirtualServices {
		vs := resolveVirtualService(v.Resource, v.Spec.(*networking.VirtualService))
		vs.GatewayAPI = v.Semantics
		pc.virtualServices = append(pc.virtualServices, vs)
	}
	config.SortByCreation(pc.sidecars)
	// The oldest VirtualService wins a host, as in Istio.
	sort.SliceStable(pc.virtualServices, func(i, j int) bool {
		return config.OlderThan(pc.virtualServices[i].Resource, pc.virtualServices[j].Resource)
	})
	if p := opts.Previous; p != nil {
		pc.prev = &previous{resources: p.resources, registry: p.Registry, meshGatewayAPI: p.hasMeshGatewayAPI(), referenced: p.referencedHosts(),
			gatewayAPI: p.hasGatewayAPI()}
	}
	return pc
}

// GatewayAPIStatus is the Gateway API status computed for this push.
func (pc *PushContext) GatewayAPIStatus() *gatewayapi.Status { return pc.gatewayAPI }

// GatewaysForProxy returns the Gateways selecting a router proxy with
// labels in namespace ns: Istio Gateways from every namespace, Gateways
// converted from the Gateway API only in their own namespace.
func (pc *PushContext) GatewaysForProxy(labels map[string]string, ns string) []*config.Resource {
	var out []*config.Resource
	for _, g := range pc.GatewaysFor(labels) {
		if g.Annotations[gatewayapi.AnnotationNamespaceScoped] == "true" && g.Namespace != ns {
			continue
		}
		out = append(out, g)
	}
	return out
}

func resolveVirtualService(r *config.Resource, spec *networking.VirtualService) *VirtualService {
	vs := &VirtualService{Resource: r, Spec: spec}
	for _, h := range spec.Hosts {
		vs.Hosts = append(vs.Hosts, config.ResolveHost(h, r.Namespace, ""))
	}
	vs.Gateways = ResolveGateways(spec.Gateways, r.Namespace)
	if len(vs.Gateways) == 0 {
		vs.Gateways = []string{GatewayMesh}
	}
	return vs
}

// ResolveGateways qualifies gateway names with ns where they have none.
func ResolveGateways(gws []string, ns string) []string {
	out := make([]string, 0, len(gws))
	for _, g := range gws {
		out = append(out, ResolveGateway(g, ns))
	}
	return out
}

// ResolveGateway qualifies one gateway name: "mesh" stays, "gw" becomes
// "ns/gw", and "gw.ns.svc.cluster.local" becomes "ns/gw" as Istio accepts.
func ResolveGateway(g, ns string) string {
	if g == GatewayMesh || strings.Contains(g, "/") {
		return g
	}
	if name, rest, ok := strings.Cut(g, "."); ok {
		gwNS, _, _ := strings.Cut(rest, ".")
		return gwNS + "/" + name
	}
	return ns + "/" + g
}

// VirtualServicesFor returns the VirtualServices bound to gateway ("mesh"
// or "ns/name") and visible from namespace ns, oldest first by key as Istio
// orders them when creation times are equal.
func (pc *PushContext) VirtualServicesFor(gateway, ns string) []*VirtualService {
	var out []*VirtualService
	for _, vs := range pc.virtualServices {
		if !bound(vs.Gateways, gateway) || !exportedTo(vs.Spec.ExportTo, vs.Namespace, ns) {
			continue
		}
		out = append(out, vs)
	}
	return out
}

// Delegate returns the delegate VirtualService named by d, relative to the
// parent's namespace.
func (pc *PushContext) Delegate(d *networking.Delegate, parentNS string) *VirtualService {
	ns := d.Namespace
	if ns == "" {
		ns = parentNS
	}
	return pc.delegates[config.Key{Kind: config.KindVirtualService, Namespace: ns, Name: d.Name}]
}

// DestinationRule picks the DestinationRule for host as seen from a proxy
// in namespace proxyNS: Istio looks in the proxy's namespace, then the
// service's, then the root namespace; within one namespace an exact host
// beats the longest matching wildcard.
func (pc *PushContext) DestinationRule(proxyNS, host, serviceNS string) *DestinationRule {
	root := "istio-system"
	if pc.Mesh != nil && pc.Mesh.RootNamespace != "" {
		root = pc.Mesh.RootNamespace
	}
	for _, ns := range []string{proxyNS, serviceNS, root} {
		var best *DestinationRule
		for _, dr := range pc.destRules {
			if dr.Namespace != ns || !config.HostMatches(dr.Host, host) {
				continue
			}
			if ns != proxyNS && !exportedTo(dr.Spec.ExportTo, dr.Namespace, proxyNS) {
				continue
			}
			if best == nil || moreSpecific(dr.Host, best.Host) {
				best = dr
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// Secret returns the Secret ns/name, or nil.
func (pc *PushContext) Secret(ns, name string) *config.Secret {
	return pc.secrets[config.Key{Kind: config.KindSecret, Namespace: ns, Name: name}]
}

// Gateways returns every Gateway resource in key order.
func (pc *PushContext) Gateways() []*config.Resource {
	out := make([]*config.Resource, 0, len(pc.gateways))
	for _, g := range pc.gateways {
		out = append(out, g)
	}
	// Istio merges Gateways oldest first; a later server that conflicts
	// is the one dropped.
	config.SortByCreation(out)
	return out
}

func moreSpecific(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return !aw
	}
	return len(a) > len(b)
}

func bound(gateways []string, gw string) bool {
	for _, g := range gateways {
		if g == gw {
			return true
		}
	}
	return false
}

func exportedTo(exportTo []string, ownNS, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == ns || (e == "." && ownNS == ns) {
			return true
		}
	}
	return false
}

// SortedKeys returns a map's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// UsesFailoverPriority reports whether any DestinationRule, or the mesh's
// localityLbSetting, names a failoverPriority: only then do a proxy's
// labels shape the endpoints it is sent (xdsgen applyFailoverPriorities).
func (pc *PushContext) UsesFailoverPriority() bool {
	if len(pc.Mesh.GetLocalityLbSetting().GetFailoverPriority()) > 0 {
		return true
	}
	for _, dr := range pc.destRules {
		tp := dr.Spec.GetTrafficPolicy()
		if len(tp.GetLoadBalancer().GetLocalityLbSetting().GetFailoverPriority()) > 0 {
			return true
		}
		for _, pp := range tp.GetPortLevelSettings() {
			if len(pp.GetLoadBalancer().GetLocalityLbSetting().GetFailoverPriority()) > 0 {
				return true
			}
		}
		for _, ss := range dr.Spec.GetSubsets() {
			stp := ss.GetTrafficPolicy()
			if len(stp.GetLoadBalancer().GetLocalityLbSetting().GetFailoverPriority()) > 0 {
				return true
			}
			for _, pp := range stp.GetPortLevelSettings() {
				if len(pp.GetLoadBalancer().GetLocalityLbSetting().GetFailoverPriority()) > 0 {
					return true
				}
			}
		}
	}
	return false
}
