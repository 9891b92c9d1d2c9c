package xdsgen

import (
	"fmt"
	"strings"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// The cache keys: everything a shared resource reads from the proxy, and
// nothing more (the more a key holds, the less is shared). Visibility
// (exportTo, the Sidecar's egress hosts and ports) is decided before a
// lookup, so a key never needs the Sidecar scope for that. Each shared
// resource is built from a proxy reduced to its key's fields
// (keyProxy), so a read the key does not cover sees an empty field rather
// than the first proxy's.

// clusterKey keys an outbound service cluster (buildServiceCluster).
type clusterKey struct {
	// svc, port and subset name the cluster (outbound|port|subset|host);
	// svc is the service itself, as namespaces may see different
	// services of one hostname.
	svc    *registry.Service
	port   uint32
	subset string
	// dr is the DestinationRule the proxy's namespace resolves for the
	// host (push.DestinationRule: proxy namespace, exportTo); its policy
	// and subsets are all the cluster takes from it. Pointers are stable
	// within a push.
	dr *model.DestinationRule
	// namespace is the proxy's, only when the rule names a tls
	// credentialName: applyUpstreamTLS looks the Secret up there first.
	namespace string
	// locality is the proxy's, only for clusters that carry their own
	// endpoints (DNS services): applyLoadBalancer applies locality
	// priorities to them.
	locality string
}

// endpointKey keys an EDS cluster's ClusterLoadAssignment
// (buildServiceEndpoints).
type endpointKey struct {
	svc    *registry.Service
	port   uint32
	subset string
	// dr as in clusterKey: its subset labels select the endpoints, its
	// tls mode sets their tlsMode metadata, its locality LB setting
	// their priorities and weights.
	dr *model.DestinationRule
	// locality is the proxy's, only when a locality LB setting reads it
	// (applyLocalityLB: distribute, or failover with outlier detection).
	locality string
	// priorityLabels, only when failoverPriority applies
	// (applyFailoverPriorities): whether the proxy has labels at all,
	// then the values of the labels it names, locality ones included.
	priorityLabels string
}

// routeKey keys a sidecar outbound route table (outboundRouteTable).
type routeKey struct {
	// name and onlyPort: the "outbound" table (0) or a bound egress
	// listener's, for its port alone.
	name     string
	onlyPort uint32
	// proxyType: only sidecars have these tables; kept for clarity.
	proxyType model.ProxyType
	// namespace is the proxy's: service and VirtualService exportTo,
	// DestinationRule lookups (hash policies), short host aliases and
	// sourceNamespace matches.
	namespace string
	// sidecar is the Sidecar resource in force (nil for none): with the
	// namespace it is the whole SidecarScope (egress hosts, ports and
	// protocols, outbound traffic policy).
	sidecar *config.Resource
	// sourceLabels says which sourceLabels selectors of the
	// VirtualServices the proxy sees match its labels (http, tcp and tls
	// matches, delegates' too); empty when none has one, so labels then
	// do not matter.
	sourceLabels string
}

// keyProxy is the proxy a shared resource is built for: only the fields
// its key holds.
func keyProxy(typ model.ProxyType, namespace, locality string, labels map[string]string) *model.Proxy {
	return &model.Proxy{Type: typ, Namespace: namespace, Locality: locality, Labels: labels}
}

// serviceCluster is the cluster for t, from the Generator's cache when
// there is one.
func (g *generation) serviceCluster(t serviceClusterOf) (*sharedCluster, error) {
	k := clusterKey{svc: t.svc, port: t.port.Number, subset: t.subset.GetName(), dr: t.dr}
	if drNamesCredential(t.dr) {
		k.namespace = g.proxy.Namespace
	}
	if t.svc.Resolution == registry.ResolutionDNS {
		k.locality = g.proxy.Locality
	}
	build := func() (*sharedCluster, error) {
		b := g.sub(keyProxy("", k.namespace, k.locality, nil), nil)
		c := b.buildServiceCluster(t)
		if err := validateCluster(c); err != nil {
			return nil, err
		}
		return &sharedCluster{cluster: c, conflicts: b.out.Conflicts}, nil
	}
	if g.gen == nil {
		return build()
	}
	return g.gen.clusters.get(k, build)
}

// serviceEndpoints is the ClusterLoadAssignment for t, from the
// Generator's cache when there is one.
func (g *generation) serviceEndpoints(t serviceClusterOf) (*endpoint.ClusterLoadAssignment, error) {
	k := endpointKey{svc: t.svc, port: t.port.Number, subset: t.subset.GetName(), dr: t.dr}
	var labels map[string]string
	policy := mergedPolicy(t.dr, t.port.Number, k.subset)
	if setting := g.localityLbSetting(policy.GetLoadBalancer().GetLocalityLbSetting()); setting != nil {
		outlier := policy.GetOutlierDetection() != nil
		if setting.GetDistribute() != nil || outlier {
			k.locality = g.proxy.Locality
		}
		if setting.GetDistribute() == nil && outlier && len(setting.FailoverPriority) > 0 {
			k.priorityLabels = priorityLabelValues(g.proxyLabels(), setting.FailoverPriority)
			labels = g.proxy.Labels
		}
	}
	build := func() (*sharedEndpoints, error) {
		b := g.sub(keyProxy("", "", k.locality, labels), nil)
		cla := b.buildServiceEndpoints(t)
		if err := validateEndpoints(cla); err != nil {
			return nil, err
		}
		return &sharedEndpoints{cla: cla}, nil
	}
	if g.gen == nil {
		se, err := build()
		if err != nil {
			return nil, err
		}
		return se.cla, nil
	}
	se, err := g.gen.endpoints.get(k, build)
	if err != nil {
		return nil, err
	}
	return se.cla, nil
}

// sharedRouteTable is the outbound route table named name (onlyPort as
// outboundRouteTable's), from the Generator's cache when there is one.
func (g *generation) sharedRouteTable(name string, onlyPort uint32) (*route.RouteConfiguration, error) {
	k := routeKey{name: name, onlyPort: onlyPort, proxyType: g.proxy.Type, namespace: g.proxy.Namespace,
		sourceLabels: g.sourceLabelsFingerprint(g.meshVirtualServices())}
	if g.scope != nil {
		k.sidecar = g.scope.Resource
	}
	build := func() (*sharedRoute, error) {
		// Labels stay: the proxies of one key differ in labels only where
		// no sourceLabels selector looks.
		b := g.sub(keyProxy(k.proxyType, k.namespace, "", g.proxy.Labels), g.scope)
		rc := b.outboundRouteTable(name, onlyPort)
		if err := validateRoute(rc); err != nil {
			return nil, err
		}
		return &sharedRoute{rc: rc, conflicts: b.out.Conflicts}, nil
	}
	var sr *sharedRoute
	var err error
	if g.gen == nil {
		sr, err = build()
	} else {
		sr, err = g.gen.routes.get(k, build)
	}
	if err != nil {
		return nil, err
	}
	g.out.Conflicts = append(g.out.Conflicts, sr.conflicts...)
	return sr.rc, nil
}

// sub is a generation for building a shared resource: its own output,
// the same push and caches.
func (g *generation) sub(p *model.Proxy, scope *model.SidecarScope) *generation {
	return &generation{push: g.push, proxy: p, out: &Resources{}, scope: scope, gen: g.gen}
}

// priorityLabelValues is a proxy's side of failoverPriority: whether it
// has labels (applyFailoverPriorities does nothing without), then each
// named label's value ("name=value" entries compare to their value, not
// the proxy's, and need none).
func priorityLabelValues(proxyLabels map[string]string, priorities []string) string {
	if len(proxyLabels) == 0 {
		return "-"
	}
	var b strings.Builder
	b.WriteString("+")
	for _, l := range priorities {
		name, _, _ := strings.Cut(l, "=")
		v, ok := proxyLabels[name]
		fmt.Fprintf(&b, "%t%q", ok, v)
	}
	return b.String()
}

// sourceLabelsFingerprint says, selector by selector, which sourceLabels
// of the VirtualServices in vsList (and their delegates) match the
// proxy's labels: a delegate's merged match takes the child's selector,
// else the parent's (mergeMatch), so the bits of both decide it.
func (g *generation) sourceLabelsFingerprint(vsList []*model.VirtualService) string {
	var b []byte
	add := func(sel map[string]string) {
		if len(sel) == 0 {
			return
		}
		if registry.LabelsMatch(sel, g.proxy.Labels) {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	http := func(routes []*networking.HTTPRoute) {
		for _, hr := range routes {
			for _, m := range hr.Match {
				add(m.SourceLabels)
			}
		}
	}
	for _, vs := range vsList {
		http(vs.Spec.Http)
		for _, hr := range vs.Spec.Http {
			if hr.Delegate == nil {
				continue
			}
			if child := g.push.Delegate(hr.Delegate, vs.Namespace); child != nil {
				http(child.Spec.Http)
			}
		}
		for _, tr := range vs.Spec.Tcp {
			for _, m := range tr.Match {
				add(m.SourceLabels)
			}
		}
		for _, tr := range vs.Spec.Tls {
			for _, m := range tr.Match {
				add(m.SourceLabels)
			}
		}
	}
	return string(b)
}

// drNamesCredential reports whether a DestinationRule's tls anywhere
// names a credentialName (a Secret looked up from the proxy's namespace).
func drNamesCredential(dr *model.DestinationRule) bool {
	if dr == nil {
		return false
	}
	policy := func(tp *networking.TrafficPolicy) bool {
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
	if policy(dr.Spec.GetTrafficPolicy()) {
		return true
	}
	for _, s := range dr.Spec.GetSubsets() {
		if policy(s.GetTrafficPolicy()) {
			return true
		}
	}
	return false
}

// serviceClusterNamed finds the outbound service cluster name names as
// this proxy sees it (clusters' visibility rules); ok is false when the
// proxy has no such cluster.
func (g *generation) serviceClusterNamed(name string) (serviceClusterOf, bool) {
	dir, portNum, subset, host, ok := ParseClusterName(name)
	if !ok || dir != "outbound" {
		return serviceClusterOf{}, false
	}
	for _, svc := range g.push.ServicesForHost(host) {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) || !g.scope.ServicePortVisible(svc, portNum) {
			continue
		}
		port, ok := svc.Port(portNum)
		if !ok {
			continue
		}
		t := serviceClusterOf{svc: svc, port: port, dr: g.serviceDestinationRule(svc)}
		if subset == "" {
			return t, true
		}
		if t.dr == nil {
			return serviceClusterOf{}, false
		}
		for _, s := range t.dr.Spec.GetSubsets() {
			if s.GetName() == subset {
				t.subset = s
				return t, true
			}
		}
		return serviceClusterOf{}, false
	}
	return serviceClusterOf{}, false
}
