package gatewayapi

import (
	"fmt"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// routeInfo is a route of any kind being bound to its parents.
type routeInfo struct {
	res *config.Resource
	// kind is the route's kind ("HTTPRoute", ...).
	kind       string
	parentRefs []gwv1.ParentReference
	// hostnames are the route's hostnames (nil: any). L4 routes without
	// hostnames (TCPRoute) leave it nil and set ignoreHosts.
	hostnames   []string
	ignoreHosts bool
	// meshAllowed says whether Service parents (GAMMA) are served.
	meshAllowed bool
	status      *RouteStatus
}

// attachment is one place a route is bound: a Gateway listener with the
// hostnames it serves there, or a Service (mesh).
type attachment struct {
	parent *RouteParentStatus
	// Gateway parents.
	listener  *listenerInfo
	hostnames []string
	// Mesh parents.
	serviceName, serviceNS, serviceHost string
	port                                int32 // 0: every port
}

func newRouteInfo(c *converter, res *config.Resource, kind string, parents []gwv1.ParentReference, hostnames []gwv1.Hostname) *routeInfo {
	ri := &routeInfo{res: res, kind: kind, parentRefs: parents,
		status: &RouteStatus{Kind: kind, Namespace: res.Namespace, Name: res.Name, Parents: []*RouteParentStatus{}}}
	for _, h := range hostnames {
		ri.hostnames = append(ri.hostnames, strings.ToLower(string(h)))
	}
	return ri
}

// bind resolves every parent reference of the route, records Accepted
// for each and counts the route on the listeners it attaches to. Parents
// that are another implementation's are left alone.
func (c *converter) bind(ri *routeInfo) []*attachment {
	var out []*attachment
	for _, ref := range ri.parentRefs {
		group, kind := config.GatewayAPIGroup, "Gateway"
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		ns := ri.res.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		ps := &RouteParentStatus{ParentRef: describeParentRef(ref, ri.res.Namespace), ControllerName: ControllerName, Ref: ref}
		switch {
		case group == "" && kind == "Service":
			if !ri.meshAllowed {
				ri.status.Parents = append(ri.status.Parents, ps)
				ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonUnsupportedValue),
					"%s with a Service parent (mesh) is not supported", ri.kind)}
				continue
			}
			ri.status.Parents = append(ri.status.Parents, ps)
			if !c.serviceExists(string(ref.Name), ns) {
				ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNoMatchingParent),
					"Service %s/%s does not exist", ns, ref.Name)}
				continue
			}
			a := &attachment{parent: ps, serviceName: string(ref.Name), serviceNS: ns, serviceHost: c.serviceHost(string(ref.Name), ns)}
			if ref.Port != nil {
				a.port = *ref.Port
			}
			ps.Attached = []string{a.serviceHost}
			ps.Conditions = []Condition{cond(condAccepted, true, string(gwv1.RouteReasonAccepted), "")}
			out = append(out, a)
		case group == config.GatewayAPIGroup && kind == "Gateway":
			gi := c.gateways[config.Key{Kind: config.KindK8sGateway, Namespace: ns, Name: string(ref.Name)}]
			if gi == nil {
				if c.isForeignGateway(ns, string(ref.Name)) {
					continue // another controller's Gateway reports for it
				}
				ri.status.Parents = append(ri.status.Parents, ps)
				ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNoMatchingParent),
					"Gateway %s/%s does not exist or is not accepted", ns, ref.Name)}
				continue
			}
			ri.status.Parents = append(ri.status.Parents, ps)
			out = append(out, c.bindGateway(ri, ref, gi, ps)...)
		default:
			// A parent kind sluice does not implement may be another
			// controller's; it is not reported.
		}
	}
	return out
}

// isForeignGateway reports whether ns/name is a Gateway of a class that
// another controller implements.
func (c *converter) isForeignGateway(ns, name string) bool {
	for _, g := range c.out.Status.Gateways {
		if g.Namespace == ns && g.Name == name {
			return false
		}
	}
	return c.foreignGateways[config.Key{Kind: config.KindK8sGateway, Namespace: ns, Name: name}]
}

func (c *converter) bindGateway(ri *routeInfo, ref gwv1.ParentReference, gi *gatewayInfo, ps *RouteParentStatus) []*attachment {
	var candidates []*listenerInfo
	for _, li := range gi.listeners {
		if ref.SectionName != nil && string(*ref.SectionName) != string(li.spec.Name) {
			continue
		}
		if ref.Port != nil && *ref.Port != li.spec.Port {
			continue
		}
		candidates = append(candidates, li)
	}
	if len(candidates) == 0 {
		what := "listener"
		if ref.SectionName != nil {
			what += fmt.Sprintf(" named %q", *ref.SectionName)
		}
		if ref.Port != nil {
			what += fmt.Sprintf(" on port %d", *ref.Port)
		}
		ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNoMatchingParent),
			"Gateway %s/%s has no %s", gi.res.Namespace, gi.res.Name, what)}
		return nil
	}
	var out []*attachment
	var notAllowed, noHost, invalid []string
	for _, li := range candidates {
		if !li.ok {
			invalid = append(invalid, string(li.spec.Name))
			continue
		}
		if why := c.listenerAllows(li, ri); why != "" {
			notAllowed = append(notAllowed, fmt.Sprintf("listener %s: %s", li.spec.Name, why))
			continue
		}
		hosts := []string{"*"}
		if !ri.ignoreHosts {
			hosts = c.listenerHostnames(li, ri.hostnames)
			if len(hosts) == 0 {
				noHost = append(noHost, string(li.spec.Name))
				continue
			}
		}
		li.status.AttachedRoutes++
		ps.Attached = append(ps.Attached, li.ref)
		out = append(out, &attachment{parent: ps, listener: li, hostnames: hosts})
	}
	switch {
	case len(out) > 0:
		ps.Conditions = []Condition{cond(condAccepted, true, string(gwv1.RouteReasonAccepted), "")}
	case len(notAllowed) > 0:
		ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNotAllowedByListeners), "%s", strings.Join(notAllowed, "; "))}
	case len(noHost) > 0:
		ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNoMatchingListenerHostname),
			"no hostname of the route (%v) matches listener(s) %s", ri.hostnames, strings.Join(noHost, ", "))}
	default:
		ps.Conditions = []Condition{cond(condAccepted, false, string(gwv1.RouteReasonNoMatchingParent),
			"listener(s) %s are not valid", strings.Join(invalid, ", "))}
	}
	return out
}

// listenerAllows says why a listener refuses a route ("" when it allows
// it): its route kinds and its allowedRoutes namespaces.
func (c *converter) listenerAllows(li *listenerInfo, ri *routeInfo) string {
	kindOK := false
	for _, k := range li.kinds {
		if string(k.Kind) == ri.kind {
			kindOK = true
		}
	}
	if !kindOK {
		return fmt.Sprintf("route kind %s is not allowed", ri.kind)
	}
	from := gwv1.NamespacesFromSame
	var sel = (*gwv1.RouteNamespaces)(nil)
	if ar := li.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		sel = ar.Namespaces
		if ar.Namespaces.From != nil {
			from = *ar.Namespaces.From
		}
	}
	routeNS, gwNS := ri.res.Namespace, li.gw.res.Namespace
	switch from {
	case gwv1.NamespacesFromAll:
		return ""
	case gwv1.NamespacesFromSame:
		if routeNS == gwNS {
			return ""
		}
		return fmt.Sprintf("routes from namespace %s are not allowed (only %s)", routeNS, gwNS)
	case gwv1.NamespacesFromSelector:
		if sel != nil && selectorMatches(sel.Selector, c.namespaceLabels(routeNS)) {
			return ""
		}
		return fmt.Sprintf("namespace %s does not match the allowedRoutes selector", routeNS)
	}
	return fmt.Sprintf("routes from namespace %s are not allowed (from: %s)", routeNS, from)
}

// listenerHostnames are the hostnames a route serves on a listener: the
// intersection of the route's hostnames with the listener's, less those
// a more specific listener on the same port takes (a request goes to the
// listener with the most specific matching hostname).
func (c *converter) listenerHostnames(li *listenerInfo, routeHosts []string) []string {
	var out []string
	if len(routeHosts) == 0 {
		out = []string{orStar(li.hostname)}
	} else {
		for _, h := range routeHosts {
			if li.hostname == "" {
				out = append(out, h)
			} else if d, ok := hostIntersection(li.hostname, h); ok {
				out = append(out, d)
			}
		}
	}
	kept := out[:0]
	for _, d := range out {
		if !c.claimedBySpecificListener(li, d) {
			kept = append(kept, d)
		}
	}
	return dedupeStrings(kept)
}

func (c *converter) claimedBySpecificListener(li *listenerInfo, d string) bool {
	for _, o := range li.gw.listeners {
		if o == li || !o.ok || o.spec.Port != li.spec.Port || o.hostname == "" || o.hostname == li.hostname {
			continue
		}
		if config.HostMatches(o.hostname, d) && moreSpecific(o.hostname, li.hostname) {
			return true
		}
	}
	return false
}

// moreSpecific reports whether hostname a is more specific than b ("" is
// any host): exact beats wildcard, then the longer wins.
func moreSpecific(a, b string) bool {
	if b == "" || b == "*" {
		return a != "" && a != "*"
	}
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return !aw
	}
	return len(a) > len(b)
}

// hostIntersection is the more specific of two hostnames when one covers
// the other (a wildcard covers one or more labels in its place).
func hostIntersection(a, b string) (string, bool) {
	switch {
	case a == b:
		return a, true
	case strings.HasPrefix(a, "*") && config.HostMatches(a, b):
		return b, true
	case strings.HasPrefix(b, "*") && config.HostMatches(b, a):
		return a, true
	}
	return "", false
}

func dedupeStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// setResolvedRefs adds the route's ResolvedRefs (and PartiallyInvalid)
// conditions to every parent it has status for.
func setResolvedRefs(ri *routeInfo, resolved Condition, partial []string) {
	for _, p := range ri.status.Parents {
		p.Conditions = setCondition(p.Conditions, resolved)
		if len(partial) > 0 {
			p.Conditions = setCondition(p.Conditions, cond(condPartiallyInvalid, true, string(gwv1.RouteReasonUnsupportedValue),
				"%s", strings.Join(partial, "; ")))
		}
	}
}
