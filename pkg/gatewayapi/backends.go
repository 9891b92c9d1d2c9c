package gatewayapi

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// backendOutcome is what a rule's backendRefs resolved to.
type backendOutcome struct {
	// dests are the usable backends with a weight above 0, in order.
	dests []*networking.HTTPRouteDestination
	// byRef maps each backendRef (by index) to its destination, nil when
	// it is unusable or weighted 0.
	byRef []*networking.HTTPRouteDestination
	// validWeight and invalidWeight are the total weights of usable and
	// unusable backends.
	validWeight, invalidWeight uint64
	problems                   []Condition
}

// resolveBackends resolves a rule's backendRefs (weight 1 unless given).
func (c *converter) resolveBackends(r *config.Resource, routeKind string, refs []gwv1.BackendRef) backendOutcome {
	var out backendOutcome
	out.byRef = make([]*networking.HTTPRouteDestination, len(refs))
	for i, b := range refs {
		w := int32(1)
		if b.Weight != nil {
			w = *b.Weight
		}
		d, problem := c.resolveBackend(r, routeKind, b.BackendObjectReference)
		if problem != nil {
			out.problems = append(out.problems, *problem)
			out.invalidWeight += uint64(max(w, 0))
			continue
		}
		if w <= 0 {
			continue
		}
		dest := &networking.HTTPRouteDestination{Destination: d, Weight: w}
		out.byRef[i] = dest
		out.dests = append(out.dests, dest)
		out.validWeight += uint64(w)
	}
	return out
}

// resolveBackend resolves one backend reference: a core Service (in
// another namespace only with a ReferenceGrant), or Istio's Hostname kind
// (networking.istio.io/Hostname: a ServiceEntry host). A problem comes back
// as the ResolvedRefs condition reporting it.
func (c *converter) resolveBackend(r *config.Resource, routeKind string, b gwv1.BackendObjectReference) (*networking.Destination, *Condition) {
	group, kind := "", "Service"
	if b.Group != nil {
		group = string(*b.Group)
	}
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	ns := r.Namespace
	if b.Namespace != nil {
		ns = string(*b.Namespace)
	}
	fail := func(reason, format string, args ...any) (*networking.Destination, *Condition) {
		c := cond(condResolvedRefs, false, reason, format, args...)
		return nil, &c
	}
	port := uint32(0)
	if b.Port != nil {
		port = uint32(*b.Port)
	}
	switch {
	case group == "" && kind == "Service":
		if !c.parentServices[ns+"/"+string(b.Name)] && !c.refAllowed(routeKind, r.Namespace, "", "Service", ns, string(b.Name)) {
			return fail(string(gwv1.RouteReasonRefNotPermitted),
				"backendRef Service %s/%s is in another namespace and no ReferenceGrant there allows it", ns, b.Name)
		}
		if strings.Contains(string(b.Name), ".") {
			return fail(string(gwv1.RouteReasonBackendNotFound), "backendRef %q: name the Service, not its hostname", b.Name)
		}
		if !c.serviceExists(string(b.Name), ns) {
			return fail(string(gwv1.RouteReasonBackendNotFound), "backendRef Service %s/%s does not exist", ns, b.Name)
		}
		if port == 0 {
			return fail(string(gwv1.RouteReasonUnsupportedProtocol), "backendRef Service %s/%s has no port", ns, b.Name)
		}
		return &networking.Destination{Host: c.serviceHost(string(b.Name), ns), Port: &networking.PortSelector{Number: port}}, nil
	case group == "networking.istio.io" && kind == "Hostname":
		if b.Namespace != nil {
			return fail(string(gwv1.RouteReasonInvalidKind), "backendRef Hostname %s: namespace may not be set", b.Name)
		}
		if c.opts.Registry == nil || len(c.opts.Registry.ServicesForHost(string(b.Name))) == 0 {
			return fail(string(gwv1.RouteReasonBackendNotFound), "backendRef Hostname %s: no service has that host", b.Name)
		}
		if port == 0 {
			return fail(string(gwv1.RouteReasonUnsupportedProtocol), "backendRef Hostname %s has no port", b.Name)
		}
		return &networking.Destination{Host: string(b.Name), Port: &networking.PortSelector{Number: port}}, nil
	}
	return fail(string(gwv1.RouteReasonInvalidKind), "backendRef %s/%s %s: only core Services (and networking.istio.io Hostnames) are supported",
		group, kind, b.Name)
}
