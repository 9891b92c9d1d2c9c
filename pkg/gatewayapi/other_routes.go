package gatewayapi

import (
	"fmt"
	"regexp"

	networking "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// grpcRoute converts a GRPCRoute as Istio does: it is an HTTPRoute on the
// gRPC path /<service>/<method>, so it is restated as one (method matches
// become path matches, header matches and filters carry over) and
// converted the same way.
func (c *converter) grpcRoute(r *config.Resource, spec *gwv1.GRPCRouteSpec) {
	h := &gwv1.HTTPRouteSpec{CommonRouteSpec: spec.CommonRouteSpec, Hostnames: spec.Hostnames}
	for _, rule := range spec.Rules {
		hr := gwv1.HTTPRouteRule{Name: rule.Name, SessionPersistence: rule.SessionPersistence}
		for _, m := range rule.Matches {
			hm := gwv1.HTTPRouteMatch{Path: grpcPath(m.Method)}
			for _, hd := range m.Headers {
				t := gwv1.HeaderMatchExact
				if hd.Type != nil && *hd.Type == gwv1.GRPCHeaderMatchRegularExpression {
					t = gwv1.HeaderMatchRegularExpression
				}
				hm.Headers = append(hm.Headers, gwv1.HTTPHeaderMatch{Type: &t, Name: gwv1.HTTPHeaderName(hd.Name), Value: hd.Value})
			}
			hr.Matches = append(hr.Matches, hm)
		}
		hr.Filters = grpcFilters(rule.Filters)
		for _, b := range rule.BackendRefs {
			hr.BackendRefs = append(hr.BackendRefs, gwv1.HTTPBackendRef{BackendRef: b.BackendRef, Filters: grpcFilters(b.Filters)})
		}
		h.Rules = append(h.Rules, hr)
	}
	c.httpLike(r, "GRPCRoute", h)
}

func grpcFilters(in []gwv1.GRPCRouteFilter) []gwv1.HTTPRouteFilter {
	var out []gwv1.HTTPRouteFilter
	for _, f := range in {
		out = append(out, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier: f.RequestHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror: f.RequestMirror, ExtensionRef: f.ExtensionRef})
	}
	return out
}

// grpcPath is the HTTP path match of a gRPC method match.
func grpcPath(m *gwv1.GRPCMethodMatch) *gwv1.HTTPPathMatch {
	if m == nil {
		return nil
	}
	svc, method := "", ""
	if m.Service != nil {
		svc = *m.Service
	}
	if m.Method != nil {
		method = *m.Method
	}
	typ := gwv1.GRPCMethodMatchExact
	if m.Type != nil {
		typ = *m.Type
	}
	pm := func(t gwv1.PathMatchType, v string) *gwv1.HTTPPathMatch {
		return &gwv1.HTTPPathMatch{Type: &t, Value: &v}
	}
	if typ == gwv1.GRPCMethodMatchExact {
		switch {
		case svc != "" && method != "":
			return pm(gwv1.PathMatchExact, "/"+svc+"/"+method)
		case svc != "":
			return pm(gwv1.PathMatchPathPrefix, "/"+svc)
		case method != "":
			return pm(gwv1.PathMatchRegularExpression, "/[^/]+/"+regexp.QuoteMeta(method))
		}
		return nil
	}
	if svc == "" {
		svc = "[^/]+"
	}
	if method == "" {
		method = "[^/]+"
	}
	return pm(gwv1.PathMatchRegularExpression, "/"+svc+"/"+method)
}

// tcpRoute converts a TCPRoute into a VirtualService with a tcp route per
// rule, bound to the TCP (or terminated TLS) listeners it attaches to.
func (c *converter) tcpRoute(r *config.Resource, spec *gwv1.TCPRouteSpec) {
	ri := newRouteInfo(c, r, "TCPRoute", spec.ParentRefs, nil)
	ri.ignoreHosts = true
	c.out.Status.Routes = append(c.out.Status.Routes, ri.status)
	attachments := c.bind(ri)
	var routes []*networking.TCPRoute
	var problems []Condition
	for _, rule := range spec.Rules {
		dests, p := c.l4Destinations(r, "TCPRoute", rule.BackendRefs)
		problems = append(problems, p...)
		routes = append(routes, &networking.TCPRoute{Route: dests})
	}
	setResolvedRefs(ri, l4Resolved(problems), nil)
	gws := listenerRefs(attachments)
	if len(gws) == 0 {
		return
	}
	vs := &networking.VirtualService{Hosts: []string{"*"}, Gateways: gws, Tcp: routes}
	c.out.VirtualServices = append(c.out.VirtualServices, &VirtualService{
		Resource:  c.generated(r.Name+".tcp", r.Namespace, []config.Key{r.Key()}, r.Source, vs),
		Semantics: &RouteSemantics{Sources: []config.Key{r.Key()}},
	})
}

// tlsRoute converts a TLSRoute into a VirtualService with a tls route per
// rule matching the route's hostnames as SNI.
func (c *converter) tlsRoute(r *config.Resource, spec *gwv1.TLSRouteSpec) {
	ri := newRouteInfo(c, r, "TLSRoute", spec.ParentRefs, spec.Hostnames)
	c.out.Status.Routes = append(c.out.Status.Routes, ri.status)
	attachments := c.bind(ri)
	var problems []Condition
	// One VirtualService per listener: the SNI names are the route's
	// hostnames as that listener admits them.
	for i, a := range attachments {
		if a.listener == nil {
			continue
		}
		var routes []*networking.TLSRoute
		for _, rule := range spec.Rules {
			dests, p := c.l4Destinations(r, "TLSRoute", rule.BackendRefs)
			if i == 0 {
				problems = append(problems, p...)
			}
			routes = append(routes, &networking.TLSRoute{
				Match: []*networking.TLSMatchAttributes{{SniHosts: a.hostnames}},
				Route: dests,
			})
		}
		vs := &networking.VirtualService{Hosts: a.hostnames, Gateways: []string{a.listener.ref}, Tls: routes}
		c.out.VirtualServices = append(c.out.VirtualServices, &VirtualService{
			Resource:  c.generated(fmt.Sprintf("%s.tls.%d", r.Name, i), r.Namespace, []config.Key{r.Key()}, r.Source, vs),
			Semantics: &RouteSemantics{Sources: []config.Key{r.Key()}},
		})
	}
	if len(attachments) == 0 {
		for _, rule := range spec.Rules {
			_, p := c.l4Destinations(r, "TLSRoute", rule.BackendRefs)
			problems = append(problems, p...)
		}
	}
	setResolvedRefs(ri, l4Resolved(problems), nil)
}

// l4Destinations resolves an L4 rule's backends. Unusable backends and
// zero weights are dropped; a rule left without a backend sends its
// connections to the BlackHole (they are refused), as the Gateway API
// requires ("reject connection attempts").
func (c *converter) l4Destinations(r *config.Resource, kind string, refs []gwv1.BackendRef) ([]*networking.RouteDestination, []Condition) {
	res := c.resolveBackends(r, kind, refs)
	var out []*networking.RouteDestination
	for _, d := range res.dests {
		out = append(out, &networking.RouteDestination{Destination: d.Destination, Weight: d.Weight})
	}
	if len(out) == 1 {
		out[0].Weight = 0
	}
	if len(out) == 0 {
		out = []*networking.RouteDestination{{Destination: &networking.Destination{Host: blackHoleHost, Port: &networking.PortSelector{Number: 1}}}}
	}
	return out, res.problems
}

// blackHoleHost names no service: its cluster does not exist, so
// connections to it are refused.
const blackHoleHost = "blackhole.gateway-api.invalid"

func l4Resolved(problems []Condition) Condition {
	if len(problems) == 0 {
		return cond(condResolvedRefs, true, string(gwv1.RouteReasonResolvedRefs), "")
	}
	return problems[0]
}

func listenerRefs(as []*attachment) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range as {
		if a.listener != nil && !seen[a.listener.ref] {
			seen[a.listener.ref] = true
			out = append(out, a.listener.ref)
		}
	}
	return out
}
