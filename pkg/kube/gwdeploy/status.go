package gwdeploy

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// Status is what the deployment side says of a Gateway's status.
type Status struct {
	// Addresses are status.addresses (Istio reports none until the
	// Gateway has one, and the status writer then keeps the last ones).
	Addresses []gwv1.GatewayStatusAddress
	// Programmed replaces the Gateway's Programmed condition when the
	// config alone would have it True.
	Programmed gatewayapi.Condition
	// Accepted, when set, replaces the Gateway's Accepted condition when
	// the config alone would have it True: False, InvalidParameters, for
	// a parametersRef that is not usable (istiod's validateParametersRef).
	Accepted *gatewayapi.Condition
}

// Conditions are the conditions the deployment side sets: Accepted when
// set, and Programmed.
func (s Status) Conditions() []gatewayapi.Condition {
	if s.Accepted != nil {
		return []gatewayapi.Condition{*s.Accepted, s.Programmed}
	}
	return []gatewayapi.Condition{s.Programmed}
}

// Status returns a Gateway's addresses and Programmed condition, as
// istiod's reportGatewayStatus/SetProgrammedCondition derive them from
// ResolveGatewayInstances; false when this controller does not handle the
// Gateway (another revision's or class's).
func (c *Controller) Status(ns, name string) (Status, bool) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	c.mu.Lock()
	d := c.state[key]
	c.mu.Unlock()
	if d == nil {
		return Status{}, false
	}
	var accepted *gatewayapi.Condition
	if d.params != nil {
		accepted = &gatewayapi.Condition{Type: string(gwv1.GatewayConditionAccepted), Status: "False",
			Reason: string(gwv1.GatewayReasonInvalidParameters), Message: d.params.Error()}
	}
	if d.err != nil {
		return Status{Accepted: accepted, Programmed: gatewayapi.Condition{Type: "Programmed", Status: "False",
			Reason: string(gwv1.GatewayReasonInvalid), Message: d.err.Error()}}, true
	}
	gw, err := c.gateways.Gateways(ns).Get(name)
	if err != nil {
		return Status{}, false
	}
	st := c.resolve(gw, d).status(gw)
	st.Accepted = accepted
	return st, true
}

// resolved is ResolveGatewayInstances' result.
type resolved struct {
	internal, internalIP, external, pending, warnings []string
	usable                                            bool
	services                                          []string
}

// resolve looks up each of the Gateway's Services and, per listener port,
// whether it has ready endpoints behind it.
func (c *Controller) resolve(gw *gwv1.Gateway, d *deployed) resolved {
	r := resolved{usable: true, services: d.services}
	internal, internalIP, external, pending := sets.New[string](), sets.New[string](), sets.New[string](), sets.New[string]()
	ports := sets.New[int32]()
	for _, l := range gw.Spec.Listeners {
		ports.Insert(l.Port)
	}
	for _, h := range d.services {
		svc := c.service(h)
		if svc == nil {
			r.warnings = append(r.warnings, fmt.Sprintf("hostname %q not found", h))
			r.usable = false
			continue
		}
		ready := c.readyPorts(svc)
		for _, port := range sets.List(ports) {
			sp := servicePort(svc, port)
			switch {
			case sp != nil && ready[sp.Name] > 0:
				internal.Insert(h + ":" + strconv.Itoa(int(port)))
				internalIP.Insert(svc.Spec.ClusterIPs...)
				if ing := ingress(svc); len(ing) > 0 {
					external.Insert(ing...)
				} else if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && !pending.Has(h) {
					r.warnings = append(r.warnings, fmt.Sprintf("address pending for hostname %q", h))
					pending.Insert(h)
				}
			case len(ready) == 0:
				r.warnings = append(r.warnings, fmt.Sprintf("no instances found for hostname %q", h))
			case sp == nil || !d.managed:
				// A managed Service with the port: endpoints not synced yet.
				r.warnings = append(r.warnings, fmt.Sprintf("port %d not found for hostname %q", port, h))
				r.usable = false
			}
		}
	}
	sort.Strings(r.warnings)
	r.warnings = slices.Compact(r.warnings)
	r.internal, r.internalIP, r.external, r.pending = sets.List(internal), sets.List(internalIP), sets.List(external), sets.List(pending)
	return r
}

// status is reportGatewayStatus's addresses and SetProgrammedCondition.
func (r resolved) status(gw *gwv1.Gateway) Status {
	prog := gatewayapi.Condition{Type: "Programmed", Status: "True", Reason: string(gwv1.GatewayReasonProgrammed), Message: "Resource programmed"}
	if len(r.internal) > 0 {
		prog.Message = "Resource programmed, assigned to service(s) " + humanJoin(r.internal)
	}
	switch {
	case len(r.services) == 0:
		prog = gatewayapi.Condition{Type: "Programmed", Status: "False", Reason: string(gwv1.GatewayReasonUnsupportedAddress),
			Message: "Failed to assign to any requested addresses"}
	case len(r.warnings) > 0:
		msg := "Failed to assign to any requested addresses: " + strings.Join(r.warnings, "; ")
		if len(r.internal) > 0 {
			msg = fmt.Sprintf("Assigned to service(s) %s, but failed to assign to all requested addresses: %s", humanJoin(r.internal), strings.Join(r.warnings, "; "))
		}
		reason := gwv1.GatewayReasonAddressNotAssigned
		if !r.usable {
			reason = gwv1.GatewayReasonAddressNotUsable
		}
		prog = gatewayapi.Condition{Type: "Programmed", Status: "False", Reason: string(reason), Message: msg}
	}
	report := r.external
	if len(report) == 0 {
		// Istio's class "istio" reports hostnames (ClassInfo AddressType
		// Hostname) unless networking.istio.io/address-type says IPAddress.
		want := gwv1.HostnameAddressType
		if t, ok := gw.Annotations[AnnotationAddressType]; ok {
			want = gwv1.AddressType(t)
		}
		if want != gwv1.HostnameAddressType {
			report = slices.Clone(r.internalIP)
		}
		if want != gwv1.IPAddressType {
			for _, hp := range r.internal {
				h, _, _ := net.SplitHostPort(hp)
				if !slices.Contains(r.pending, h) && !slices.Contains(report, h) {
					report = append(report, h)
				}
			}
		}
	}
	st := Status{Programmed: prog}
	for _, a := range report {
		t := gwv1.HostnameAddressType
		if _, err := netip.ParseAddr(a); err == nil {
			t = gwv1.IPAddressType
		}
		st.Addresses = append(st.Addresses, gwv1.GatewayStatusAddress{Type: &t, Value: a})
	}
	return st
}

// service finds a Service by hostname name.ns.svc.<domain>.
func (c *Controller) service(host string) *corev1.Service {
	parts := strings.Split(strings.TrimSuffix(host, ".svc."+c.opts.ClusterDomain), ".")
	if len(parts) != 2 {
		return nil
	}
	svc, err := c.kube.Core().V1().Services().Lister().Services(parts[1]).Get(parts[0])
	if err != nil {
		return nil
	}
	return svc
}

// readyPorts counts the ready endpoints of a Service per port name from
// its EndpointSlices.
func (c *Controller) readyPorts(svc *corev1.Service) map[string]int {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	slices, _ := c.kube.Discovery().V1().EndpointSlices().Lister().EndpointSlices(svc.Namespace).List(sel)
	out := map[string]int{}
	for _, s := range slices {
		n := 0
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n++
			}
		}
		if n == 0 {
			continue
		}
		for _, p := range s.Ports {
			if p.Name != nil {
				out[*p.Name] += n
			}
		}
	}
	return out
}

func servicePort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// ingress are a LoadBalancer Service's external addresses.
func ingress(svc *corev1.Service) []string {
	var out []string
	for _, i := range svc.Status.LoadBalancer.Ingress {
		switch {
		case i.IP != "":
			out = append(out, i.IP)
		case i.Hostname != "":
			out = append(out, i.Hostname)
		}
	}
	return out
}

// humanJoin is Istio's HumanReadableJoin: a, a and b, a, b, and c.
func humanJoin(ss []string) string {
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	case 2:
		return ss[0] + " and " + ss[1]
	}
	return strings.Join(ss[:len(ss)-1], ", ") + ", and " + ss[len(ss)-1]
}
