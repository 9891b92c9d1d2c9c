package xdsgen

import (
	"fmt"
	"strconv"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// routeContext is where routes are being generated: the port of the
// virtual host and, when the host is a service, that service.
type routeContext struct {
	port    uint32
	service *registry.Service
	// gateway is "mesh" for sidecars, or the "ns/name" of the Gateway
	// whose server the routes are for.
	gateway string
}

// virtualServiceRoutes translates vs's http routes for one virtual host.
// Each match block becomes one Envoy route (OR across blocks), in order,
// so the first matching route wins as in Istio.
func (g *generation) virtualServiceRoutes(vs *model.VirtualService, rc routeContext) []*route.Route {
	var out []*route.Route
	for i, hr := range g.expandDelegates(vs) {
		matches := g.applicableMatches(hr.route, vs, rc)
		if matches == nil {
			continue
		}
		name := hr.route.Name
		if name == "" {
			name = fmt.Sprintf("%s.%s.%d", hr.owner.Namespace, hr.owner.Name, i)
		}
		action := g.routeAction(hr.route, hr.owner.Namespace, rc)
		for _, m := range matches {
			// The root VirtualService, also for a delegate's routes: Istio
			// merges delegates into their root (mergeVirtualServicesIfNeeded)
			// and names the root (route.go translateRoute).
			r := &route.Route{Name: name, Match: translateMatch(m), Metadata: addConfigInfoMetadata(nil, vs.Resource)}
			setAction(r, action)
			gatewayAPIRoute(r, hr.owner, hr.route)
			r.Decorator = &route.Decorator{Operation: routeOperation(r, hr.route, vs.Name, rc.port)}
			out = append(out, r)
		}
	}
	return out
}

// routeOperation is the decorator operation Istio gives a VirtualService
// route (GetRouteOperation): "<host>:<port><path>" when the route sends to
// one destination, the host and port of its cluster; otherwise, as for
// splits, redirects and direct responses, "<VirtualService name>:<listener
// port><path>". The path is the match's: a prefix followed by "*", an
// exact path, a regex, else "/*". An Envoy egress connection manager with
// tracing sends the operation upstream as x-envoy-decorator-operation.
func routeOperation(r *route.Route, hr *networking.HTTPRoute, vsName string, port uint32) string {
	path := "/*"
	switch ps := r.GetMatch().GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		path = ps.Prefix + "*"
	case *route.RouteMatch_Path:
		path = ps.Path
	case *route.RouteMatch_SafeRegex:
		path = ps.SafeRegex.GetRegex()
	}
	ra := r.GetRoute()
	cluster := ra.GetCluster()
	// One destination with its own header edits is a one-armed split
	// here; Istio routes it to the cluster directly.
	if wc := ra.GetWeightedClusters(); cluster == "" && len(hr.Route) == 1 && len(wc.GetClusters()) == 1 {
		cluster = wc.Clusters[0].Name
	}
	if _, p, _, host, ok := ParseClusterName(cluster); ok && host != "" {
		return traceOperation(host, p, path)
	}
	return traceOperation(vsName, port, path)
}

// traceOperation is Istio's "<host>:<port><path>" operation name.
func traceOperation(host string, port uint32, path string) string {
	return host + ":" + strconv.FormatUint(uint64(port), 10) + path
}

// applicableMatches filters a route's match blocks to those that can apply
// to this proxy on this port. It returns nil when none can (the route is
// dropped), and a single nil-match block for a route without matches.
func (g *generation) applicableMatches(hr *networking.HTTPRoute, vs *model.VirtualService, rc routeContext) []*networking.HTTPMatchRequest {
	port, gateway := rc.port, rc.gateway
	if gateway == "" {
		gateway = model.GatewayMesh
	}
	if len(hr.Match) == 0 {
		return []*networking.HTTPMatchRequest{nil}
	}
	var out []*networking.HTTPMatchRequest
	for _, m := range hr.Match {
		if m.Port != 0 && m.Port != port {
			continue
		}
		if !registry.LabelsMatch(m.SourceLabels, g.proxy.Labels) {
			continue
		}
		if m.SourceNamespace != "" && m.SourceNamespace != g.proxy.Namespace {
			continue
		}
		if len(m.Gateways) > 0 && !containsString(model.ResolveGateways(m.Gateways, vs.Namespace), gateway) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// routeAction is the translated action of one HTTP route; exactly one field is set.
type routeAction struct {
	forward  *route.RouteAction
	redirect *route.RedirectAction
	direct   *route.DirectResponseAction
	// perFilter is the route's typed_per_filter_config (fault and CORS).
	perFilter map[string]*anypb.Any
	// headers edits apply to the route whatever its action.
	reqAdd    []*headerValueOption
	reqRemove []string
	resAdd    []*headerValueOption
	resRemove []string
}

func setAction(r *route.Route, a *routeAction) {
	switch {
	case a.redirect != nil:
		r.Action = &route.Route_Redirect{Redirect: a.redirect}
	case a.direct != nil:
		r.Action = &route.Route_DirectResponse{DirectResponse: a.direct}
	default:
		r.Action = &route.Route_Route{Route: a.forward}
	}
	r.TypedPerFilterConfig = a.perFilter
	r.RequestHeadersToAdd = a.reqAdd
	r.RequestHeadersToRemove = a.reqRemove
	r.ResponseHeadersToAdd = a.resAdd
	r.ResponseHeadersToRemove = a.resRemove
}

func (g *generation) routeAction(hr *networking.HTTPRoute, ns string, rc routeContext) *routeAction {
	a := &routeAction{}
	a.reqAdd, a.reqRemove, a.resAdd, a.resRemove = translateHeaders(hr.Headers)
	// Istio puts a fault and a CORS policy on the route whatever its
	// action; their filters run before the router.
	a.perFilter = routePerFilterConfig(hr)
	switch {
	case hr.Redirect != nil:
		a.redirect = translateRedirect(hr.Redirect)
	case hr.DirectResponse != nil:
		a.direct = translateDirectResponse(hr.DirectResponse)
	default:
		a.forward = g.forwardAction(hr, ns, rc)
		g.addResilience(a.forward, hr, ns, rc)
	}
	return a
}

func (g *generation) forwardAction(hr *networking.HTTPRoute, ns string, rc routeContext) *route.RouteAction {
	ra := &route.RouteAction{Timeout: zeroDuration()}
	ra.HashPolicy = g.hashPolicies(hr, ns, rc)
	if hr.Timeout != nil {
		ra.Timeout = durationpb.New(hr.Timeout.AsDuration())
	}
	if rw := hr.Rewrite; rw != nil {
		if rw.Authority != "" {
			ra.HostRewriteSpecifier = &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Authority}
		}
		if re := rw.UriRegexRewrite; re != nil {
			ra.RegexRewrite = regexRewrite(re.Match, re.Rewrite)
		} else if rw.Uri != "" {
			ra.PrefixRewrite = rw.Uri
		}
	}
	if len(hr.Route) == 1 && !hasDestinationHeaders(hr.Route[0]) {
		ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: g.destinationCluster(hr.Route[0].Destination, ns, rc)}
		return ra
	}
	weighted := &route.WeightedCluster{}
	for _, d := range hr.Route {
		w := uint32(d.Weight)
		if len(hr.Route) == 1 && w == 0 {
			w = 100
		}
		if w == 0 {
			continue // Envoy never picks a zero-weight cluster; Istio drops them.
		}
		cw := &route.WeightedCluster_ClusterWeight{
			Name:   g.destinationCluster(d.Destination, ns, rc),
			Weight: wrapUint32(w),
		}
		cw.RequestHeadersToAdd, cw.RequestHeadersToRemove, cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = translateHeaders(d.Headers)
		weighted.Clusters = append(weighted.Clusters, cw)
	}
	if len(weighted.Clusters) == 0 {
		ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: BlackHoleCluster}
		return ra
	}
	ra.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: weighted}
	return ra
}

func hasDestinationHeaders(d *networking.HTTPRouteDestination) bool {
	return d.Headers != nil && (d.Headers.Request != nil || d.Headers.Response != nil)
}

// destinationCluster names the cluster for a route destination. The port
// is the destination's, else the service's only port, else the port the
// request came in on, as Istio picks it.
func (g *generation) destinationCluster(d *networking.Destination, ns string, rc routeContext) string {
	host := config.ResolveHost(d.GetHost(), ns, "")
	port := d.GetPort().GetNumber()
	if port == 0 {
		port = rc.port
		if svcs := g.push.ServicesForHost(host); len(svcs) > 0 && len(svcs[0].Ports) == 1 {
			port = svcs[0].Ports[0].Number
		}
	}
	return ClusterName("outbound", port, d.GetSubset(), host)
}

// httpRouteOf is a route with the VirtualService that owns it (a delegate's
// routes belong to the delegate).
type httpRouteOf struct {
	route *networking.HTTPRoute
	owner *model.VirtualService
}

// expandDelegates replaces each route that delegates with the delegate's
// routes, their matches merged under the parent's.
func (g *generation) expandDelegates(vs *model.VirtualService) []httpRouteOf {
	var out []httpRouteOf
	for _, hr := range vs.Spec.Http {
		if hr.Delegate == nil {
			out = append(out, httpRouteOf{route: hr, owner: vs})
			continue
		}
		child := g.push.Delegate(hr.Delegate, vs.Namespace)
		if child == nil {
			continue // Istio drops a route whose delegate does not exist.
		}
		for _, cr := range child.Spec.Http {
			if cr.Delegate != nil {
				continue // delegation is one level deep in Istio
			}
			merged := proto.Clone(cr).(*networking.HTTPRoute)
			m, ok := mergeMatches(hr.Match, cr.Match)
			if !ok {
				continue
			}
			merged.Match = m
			out = append(out, httpRouteOf{route: merged, owner: child})
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func zeroDuration() *durationpb.Duration { return durationpb.New(0) }
