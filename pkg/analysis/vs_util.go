package analysis

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// annotatedDestination is a VirtualService destination with where it is
// (virtualservice/util.go AnnotatedDestination).
type annotatedDestination struct {
	// RouteRule is "tcp", "tls", "http", "http.mirror" or "http.mirrors".
	RouteRule        string
	ServiceIndex     int
	DestinationIndex int
	Destination      *networking.Destination
}

// routeDestinations lists the route destinations of tcp, tls then http
// rules (getRouteDestinations).
func routeDestinations(vs *networking.VirtualService) []annotatedDestination {
	var out []annotatedDestination
	for i, r := range vs.GetTcp() {
		for j, rd := range r.GetRoute() {
			out = append(out, annotatedDestination{"tcp", i, j, rd.GetDestination()})
		}
	}
	for i, r := range vs.GetTls() {
		for j, rd := range r.GetRoute() {
			out = append(out, annotatedDestination{"tls", i, j, rd.GetDestination()})
		}
	}
	for i, r := range vs.GetHttp() {
		for j, rd := range r.GetRoute() {
			out = append(out, annotatedDestination{"http", i, j, rd.GetDestination()})
		}
	}
	return out
}

// mirrorDestinations lists the http mirror and mirrors destinations
// (getHTTPMirrorDestinations).
func mirrorDestinations(vs *networking.VirtualService) []annotatedDestination {
	var out []annotatedDestination
	for i, r := range vs.GetHttp() {
		if m := r.GetMirror(); m != nil {
			out = append(out, annotatedDestination{RouteRule: "http.mirror", ServiceIndex: i, Destination: m})
		}
		for j, m := range r.GetMirrors() {
			out = append(out, annotatedDestination{"http.mirrors", i, j, m.GetDestination()})
		}
	}
	return out
}

// path is the field path of the destination's host.
func (d annotatedDestination) path() string {
	switch d.RouteRule {
	case "http.mirror":
		return sprintf(pathMirrorHost, d.ServiceIndex)
	case "http.mirrors":
		return sprintf(pathMirrorsHost, d.ServiceIndex, d.DestinationIndex)
	}
	return sprintf(pathDestinationHost, d.RouteRule, d.ServiceIndex, d.DestinationIndex)
}

// shortOrFullName splits "ns/name", or gives name the namespace ns
// (resource.NewShortOrFullName).
func shortOrFullName(ns, name string) (string, string) {
	if n, rest, ok := strings.Cut(name, "/"); ok {
		return n, rest
	}
	return ns, name
}
