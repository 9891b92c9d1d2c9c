package gatewayapi

import (
	"fmt"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Status is the Gateway API status sluice computes, shaped as the
// Gateway API's status subresources (without timestamps and generations,
// which local files do not have).
type Status struct {
	GatewayClasses []*GatewayClassStatus `json:"gatewayClasses"`
	Gateways       []*GatewayStatus      `json:"gateways"`
	Routes         []*RouteStatus        `json:"routes"`
}

// Condition is a Gateway API status condition.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"` // "True", "False" or "Unknown"
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// GatewayClassStatus is a GatewayClass's status.
type GatewayClassStatus struct {
	Name           string      `json:"name"`
	ControllerName string      `json:"controllerName"`
	Conditions     []Condition `json:"conditions"`
}

// GatewayStatus is a Gateway's status.
type GatewayStatus struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Class      string            `json:"gatewayClassName"`
	Conditions []Condition       `json:"conditions"`
	Listeners  []*ListenerStatus `json:"listeners"`
}

// ListenerStatus is one listener's status.
type ListenerStatus struct {
	Name           string      `json:"name"`
	Port           int32       `json:"port"`
	Protocol       string      `json:"protocol"`
	SupportedKinds []string    `json:"supportedKinds"`
	AttachedRoutes int32       `json:"attachedRoutes"`
	Conditions     []Condition `json:"conditions"`
	// IstioGateway names the generated Istio Gateway ("ns/name") serving
	// the listener, when it is programmed.
	IstioGateway string `json:"istioGateway,omitempty"`
}

// RouteStatus is a route's status: one entry per parent reference sluice
// is responsible for.
type RouteStatus struct {
	Kind      string               `json:"kind"`
	Namespace string               `json:"namespace"`
	Name      string               `json:"name"`
	Parents   []*RouteParentStatus `json:"parents"`
}

// RouteParentStatus is a route's status for one parent reference.
type RouteParentStatus struct {
	// ParentRef is the reference as written, e.g. "Gateway ns/name" or
	// "Gateway ns/name section http port 80" or "Service ns/name".
	ParentRef      string      `json:"parentRef"`
	ControllerName string      `json:"controllerName"`
	Conditions     []Condition `json:"conditions"`
	// Attached lists the listeners (Gateway parents) the route is bound
	// to, or the Service host (mesh parents).
	Attached []string `json:"attached,omitempty"`
	// Ref is the parent reference as written, for the status written
	// back to a cluster (pkg/kube/gwstatus).
	Ref gwv1.ParentReference `json:"-"`
}

func cond(typ string, ok bool, reason, msg string, args ...any) Condition {
	s := "False"
	if ok {
		s = "True"
	}
	if len(args) > 0 {
		msg = fmt.Sprintf(msg, args...)
	}
	return Condition{Type: typ, Status: s, Reason: reason, Message: msg}
}

// setCondition replaces the condition of the same type, or adds it.
func setCondition(list []Condition, c Condition) []Condition {
	for i := range list {
		if list[i].Type == c.Type {
			list[i] = c
			return list
		}
	}
	return append(list, c)
}

// Condition looks up a condition by type.
func Find(list []Condition, typ string) (Condition, bool) {
	for _, c := range list {
		if c.Type == typ {
			return c, true
		}
	}
	return Condition{}, false
}

// Gateway returns the status of Gateway ns/name, or nil.
func (s *Status) Gateway(ns, name string) *GatewayStatus {
	if s == nil {
		return nil
	}
	for _, g := range s.Gateways {
		if g.Namespace == ns && g.Name == name {
			return g
		}
	}
	return nil
}

// Route returns the status of route kind ns/name, or nil.
func (s *Status) Route(kind, ns, name string) *RouteStatus {
	if s == nil {
		return nil
	}
	for _, r := range s.Routes {
		if r.Kind == kind && r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

// Listener returns a listener's status by name, or nil.
func (g *GatewayStatus) Listener(name string) *ListenerStatus {
	if g == nil {
		return nil
	}
	for _, l := range g.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func (s *Status) sort() {
	sort.Slice(s.GatewayClasses, func(i, j int) bool { return s.GatewayClasses[i].Name < s.GatewayClasses[j].Name })
	sort.Slice(s.Gateways, func(i, j int) bool {
		a, b := s.Gateways[i], s.Gateways[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	sort.Slice(s.Routes, func(i, j int) bool {
		a, b := s.Routes[i], s.Routes[j]
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
}

// Problems lists, one line each, every condition that is not as it
// should be (a True condition for the negative-polarity Conflicted, any
// other condition not True), for logs and the CLI.
func (s *Status) Problems() []string {
	if s == nil {
		return nil
	}
	var out []string
	bad := func(c Condition) bool {
		if c.Type == string(gwv1.ListenerConditionConflicted) || c.Type == string(gwv1.RouteConditionPartiallyInvalid) {
			return c.Status == "True"
		}
		return c.Status != "True"
	}
	add := func(who string, cs []Condition) {
		for _, c := range cs {
			if bad(c) {
				line := fmt.Sprintf("%s: %s=%s (%s)", who, c.Type, c.Status, c.Reason)
				if c.Message != "" {
					line += ": " + c.Message
				}
				out = append(out, line)
			}
		}
	}
	for _, c := range s.GatewayClasses {
		add("GatewayClass "+c.Name, c.Conditions)
	}
	for _, g := range s.Gateways {
		add(fmt.Sprintf("Gateway %s/%s", g.Namespace, g.Name), g.Conditions)
		for _, l := range g.Listeners {
			add(fmt.Sprintf("Gateway %s/%s listener %s", g.Namespace, g.Name, l.Name), l.Conditions)
		}
	}
	for _, r := range s.Routes {
		for _, p := range r.Parents {
			add(fmt.Sprintf("%s %s/%s parent %s", r.Kind, r.Namespace, r.Name, p.ParentRef), p.Conditions)
		}
	}
	return out
}

func describeParentRef(ref gwv1.ParentReference, routeNS string) string {
	kind := "Gateway"
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := routeNS
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s", kind, ns, ref.Name)
	if ref.SectionName != nil {
		fmt.Fprintf(&b, " section %s", *ref.SectionName)
	}
	if ref.Port != nil {
		fmt.Fprintf(&b, " port %d", *ref.Port)
	}
	return b.String()
}
