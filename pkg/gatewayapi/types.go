// Package gatewayapi converts Kubernetes Gateway API resources into the
// Istio model sluice's generator serves, the way Istio's gateway
// controller does (pilot/pkg/config/kube/gateway):
//
//   - each listener of a Gateway whose GatewayClass names sluice's
//     controller (or Istio's, accepted as an alias so manifests apply
//     unchanged) becomes an Istio Gateway with one server, selecting the
//     router proxies labelled gateway.networking.k8s.io/gateway-name=<name>
//     in the Gateway's namespace;
//   - HTTPRoutes and GRPCRoutes become VirtualServices, one per (listener,
//     hostname), holding the rules of every route attached there in the
//     Gateway API's precedence order; TCPRoutes and TLSRoutes become
//     VirtualServices with tcp and tls routes;
//   - routes whose parent is a Service (GAMMA) become VirtualServices bound
//     to "mesh" for that Service's host.
//
// What a VirtualService cannot say (segment-wise path prefixes, a redirect
// that replaces the matched prefix, a weighted share of requests answered
// 500 for invalid backends) travels beside it in RouteSemantics, which the
// generator honours. The conversion also computes the status the Gateway
// API defines for every GatewayClass, Gateway and route.
package gatewayapi

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Controller names whose GatewayClasses sluice implements.
const (
	ControllerName      = "sluice.dev/gateway-controller"
	IstioControllerName = "istio.io/gateway-controller"
)

// GatewayNameLabel selects the router proxies of a Gateway: start one with
// `sluice proxy --type router --namespace NS --labels
// gateway.networking.k8s.io/gateway-name=NAME`.
const GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// AnnotationSource is set on every generated resource; it names the
// Gateway API resource(s) it came from. AnnotationNamespaceScoped marks a
// generated Istio Gateway that selects router proxies in its own namespace
// only, as a Gateway API Gateway does.
const (
	AnnotationSource          = "internal.sluice.dev/gateway-api-source"
	AnnotationNamespaceScoped = "internal.sluice.dev/namespace-scoped"
)

// Output is the result of a conversion.
type Output struct {
	// Gateways are Istio Gateways (Spec *networking.Gateway), one per
	// programmed listener.
	Gateways []*config.Resource
	// VirtualServices are the converted routes.
	VirtualServices []*VirtualService
	// Status is the Gateway API status of every input resource sluice
	// implements.
	Status *Status
}

// VirtualService is a generated VirtualService (Resource.Spec is its
// *networking.VirtualService) with the Gateway API semantics it needs.
type VirtualService struct {
	*config.Resource
	Semantics *RouteSemantics
}

// RouteSemantics is what a VirtualService converted from a Gateway API
// route means beyond Istio's VirtualService.
type RouteSemantics struct {
	// Sources name the routes whose rules the VirtualService holds.
	Sources []config.Key
	// Routes hold per-route extras, keyed by the VirtualService's own
	// http route.
	Routes map[*networking.HTTPRoute]*RouteExtra
}

// SegmentPrefix reports whether a uri prefix match of the VirtualService
// is a Gateway API PathPrefix: it matches whole path segments, so /foo
// matches /foo and /foo/bar but not /foobar (Envoy's path_separated_prefix).
// The converter writes prefixes without a trailing '/'; a prefix ending in
// '/' (or "/") matches as written.
func (s *RouteSemantics) SegmentPrefix() bool { return s != nil }

// Extra returns the extras of one http route, or nil.
func (s *RouteSemantics) Extra(hr *networking.HTTPRoute) *RouteExtra {
	if s == nil {
		return nil
	}
	return s.Routes[hr]
}

// RouteExtra is Envoy behaviour one http route needs that Istio's
// HTTPRoute has no field for.
type RouteExtra struct {
	// RedirectPrefix, when set, makes the route's redirect replace the
	// matched path prefix with this value (Envoy's prefix_rewrite on a
	// RedirectAction) instead of the whole path.
	RedirectPrefix *string
	// InvalidWeight is the weight of backends that cannot be used (not
	// found, not permitted, unknown kind): that share of requests is
	// answered 500, as the Gateway API requires. With no valid backend at
	// all the route is a direct 500 answer instead.
	InvalidWeight uint32
}
