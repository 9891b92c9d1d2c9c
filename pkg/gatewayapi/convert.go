package gatewayapi

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Options are the inputs of a conversion besides the resources.
type Options struct {
	// Registry answers whether a backend Service exists.
	Registry *registry.Registry
	// DomainSuffix is the cluster domain; "cluster.local" when empty.
	DomainSuffix string
}

// converter holds the indices of one conversion.
type converter struct {
	opts     Options
	out      *Output
	classes  map[string]*GatewayClassStatus
	nsLabels map[string]map[string]string
	secrets  map[config.Key]*config.Secret
	grants   []grant
	gateways map[config.Key]*gatewayInfo
	// foreignGateways are Gateways of classes other controllers implement.
	foreignGateways map[config.Key]bool
	// gwOrder is the Gateways in key order.
	gwOrder []*gatewayInfo
	// services are the Kubernetes Services by namespace/name.
	services map[config.Key]*config.Resource

	http *httpCollector
	// parentServices are the mesh parents ("ns/name") of the route being
	// converted.
	parentServices map[string]bool
}

// Convert translates the Gateway API resources among resources. It never
// fails: what cannot be programmed is left out and explained in status.
func Convert(resources []*config.Resource, opts Options) *Output {
	c := &converter{
		opts:            opts,
		out:             &Output{Status: &Status{GatewayClasses: []*GatewayClassStatus{}, Gateways: []*GatewayStatus{}, Routes: []*RouteStatus{}}},
		classes:         map[string]*GatewayClassStatus{},
		nsLabels:        map[string]map[string]string{},
		secrets:         map[config.Key]*config.Secret{},
		gateways:        map[config.Key]*gatewayInfo{},
		foreignGateways: map[config.Key]bool{},
		services:        map[config.Key]*config.Resource{},
	}
	c.http = newHTTPCollector(c)
	var gws, httpRoutes, grpcRoutes, tcpRoutes, tlsRoutes []*config.Resource
	sorted := append([]*config.Resource(nil), resources...)
	config.SortResources(sorted)
	for _, r := range sorted {
		switch spec := r.Spec.(type) {
		case *gwv1.GatewayClassSpec:
			c.gatewayClass(r, spec)
		case *gwv1.GatewaySpec:
			gws = append(gws, r)
		case *gwv1.HTTPRouteSpec:
			httpRoutes = append(httpRoutes, r)
		case *gwv1.GRPCRouteSpec:
			grpcRoutes = append(grpcRoutes, r)
		case *gwv1.TCPRouteSpec:
			tcpRoutes = append(tcpRoutes, r)
		case *gwv1.TLSRouteSpec:
			tlsRoutes = append(tlsRoutes, r)
		case *gwv1.ReferenceGrantSpec:
			c.referenceGrant(r, spec)
		case *corev1.Namespace:
			c.nsLabels[r.Name] = r.Labels
		case *config.Secret:
			c.secrets[r.Key()] = spec
		case *corev1.ServiceSpec:
			if r.Kind == config.KindService {
				c.services[config.Key{Kind: config.KindService, Namespace: r.Namespace, Name: r.Name}] = r
			}
		}
	}
	if len(gws) == 0 && len(httpRoutes)+len(grpcRoutes)+len(tcpRoutes)+len(tlsRoutes) == 0 {
		c.out.Status.sort()
		return c.out
	}
	for _, g := range gws {
		c.gateway(g)
	}
	for _, r := range httpRoutes {
		c.httpRoute(r, r.Spec.(*gwv1.HTTPRouteSpec))
	}
	for _, r := range grpcRoutes {
		c.grpcRoute(r, r.Spec.(*gwv1.GRPCRouteSpec))
	}
	c.http.emit()
	for _, r := range tcpRoutes {
		c.tcpRoute(r, r.Spec.(*gwv1.TCPRouteSpec))
	}
	for _, r := range tlsRoutes {
		c.tlsRoute(r, r.Spec.(*gwv1.TLSRouteSpec))
	}
	c.finishGateways()
	c.out.Status.sort()
	return c.out
}

func (c *converter) gatewayClass(r *config.Resource, spec *gwv1.GatewayClassSpec) {
	ctrl := string(spec.ControllerName)
	st := &GatewayClassStatus{Name: r.Name, ControllerName: ctrl}
	c.classes[r.Name] = st
	if !isOurController(ctrl) {
		return
	}
	st.Conditions = []Condition{
		cond(string(gwv1.GatewayClassConditionStatusAccepted), true, string(gwv1.GatewayClassReasonAccepted),
			"handled by sluice (controller %s)", ctrl),
		cond(string(gwv1.GatewayClassConditionStatusSupportedVersion), true, string(gwv1.GatewayClassReasonSupportedVersion), ""),
	}
	// istiod accepts a class whatever its parametersRef and never reads it
	// (gatewaycommon GatewayClassesCollection, GetClassStatus): a class's
	// deployment defaults are the ConfigMap labelled
	// gateway.istio.io/defaults-for-class in its namespace. sluice accepts a
	// ConfigMap reference too, saying in the condition that it is not
	// read; any other kind is InvalidParameters, as the Gateway API has it.
	switch p := spec.ParametersRef; {
	case p == nil:
	case p.Group == "" && p.Kind == "ConfigMap":
		st.Conditions[0].Message += fmt.Sprintf("; parametersRef ConfigMap %s is not read (as istiod): the class's deployment defaults are "+
			"the ConfigMap labelled gateway.istio.io/defaults-for-class=%s in the control plane's namespace", p.Name, r.Name)
	default:
		st.Conditions[0] = cond(string(gwv1.GatewayClassConditionStatusAccepted), false, string(gwv1.GatewayClassReasonInvalidParameters),
			"parametersRef %s/%s %s is not supported by sluice (only a ConfigMap, which is not read, as istiod)", p.Group, p.Kind, p.Name)
	}
	c.out.Status.GatewayClasses = append(c.out.Status.GatewayClasses, st)
}

func isOurController(name string) bool { return name == ControllerName || name == IstioControllerName }

// namespaceLabels are a namespace's labels: those of its Namespace
// resource, plus kubernetes.io/metadata.name, which Kubernetes sets on
// every namespace.
func (c *converter) namespaceLabels(ns string) labels.Set {
	out := labels.Set{"kubernetes.io/metadata.name": ns}
	for k, v := range c.nsLabels[ns] {
		out[k] = v
	}
	return out
}

func selectorMatches(sel *metav1.LabelSelector, set labels.Set) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(set)
}

// grant is one (from, to) pair a ReferenceGrant allows.
type grant struct {
	fromGroup, fromKind, fromNS string
	toGroup, toKind, toNS       string
	toName                      string // "" = any
}

func (c *converter) referenceGrant(r *config.Resource, spec *gwv1.ReferenceGrantSpec) {
	for _, f := range spec.From {
		for _, t := range spec.To {
			g := grant{fromGroup: string(f.Group), fromKind: string(f.Kind), fromNS: string(f.Namespace),
				toGroup: string(t.Group), toKind: string(t.Kind), toNS: r.Namespace}
			if t.Name != nil {
				g.toName = string(*t.Name)
			}
			c.grants = append(c.grants, g)
		}
	}
}

// refAllowed reports whether a fromKind in fromNS may refer to toKind
// toNS/toName: always within a namespace, across namespaces only with a
// ReferenceGrant in the target's namespace.
func (c *converter) refAllowed(fromKind, fromNS, toGroup, toKind, toNS, toName string) bool {
	if fromNS == toNS {
		return true
	}
	for _, g := range c.grants {
		if g.fromGroup == config.GatewayAPIGroup && g.fromKind == fromKind && g.fromNS == fromNS &&
			g.toGroup == toGroup && g.toKind == toKind && g.toNS == toNS && (g.toName == "" || g.toName == toName) {
			return true
		}
	}
	return false
}

// serviceHost is the hostname of Service ns/name.
func (c *converter) serviceHost(name, ns string) string {
	return config.ServiceHostname(name, ns, c.opts.DomainSuffix)
}

// serviceExists reports whether the registry knows Service ns/name.
func (c *converter) serviceExists(name, ns string) bool {
	if _, ok := c.services[config.Key{Kind: config.KindService, Namespace: ns, Name: name}]; ok {
		return true
	}
	return c.opts.Registry != nil && len(c.opts.Registry.ServicesForHost(c.serviceHost(name, ns))) > 0
}
