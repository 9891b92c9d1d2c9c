// Package router is the proxy's compiled form of an Envoy
// RouteConfiguration: virtual hosts chosen by authority, routes tried in
// order, the first match wins. A Table is immutable and safe for
// concurrent use.
package router

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// Table is a compiled route configuration.
type Table struct {
	Name     string
	exact    map[string]*VirtualHost
	suffixes []wildcard // "*.example.com", longest first
	prefixes []wildcard // "example.*", longest first
	any      *VirtualHost
	// sources are the virtual hosts compiled, in order, each with the
	// message it was built from, for the next compile to reuse
	// (compile.go).
	sources []source
	// vhdsCount: the last vhdsCount sources came from VHDS.
	vhdsCount int
	// VirtualHostsCompiled and VirtualHostsReused say how many virtual
	// hosts building the table compiled and took from the previous one.
	VirtualHostsCompiled, VirtualHostsReused int
}

type wildcard struct {
	part string
	vh   *VirtualHost
}

// VirtualHost is a set of routes for some domains.
type VirtualHost struct {
	Name   string
	Routes []*Route
	// tlsRedirect answers plaintext requests when the virtual host
	// requires TLS (Envoy's require_tls, Istio's httpsRedirect).
	tlsRedirect *Route
}

// Route is one compiled route.
type Route struct {
	Name    string
	VHost   string
	path    pathMatch
	headers []headerMatch
	query   []queryMatch
	Action  Action
	// filters holds each registered HTTP filter's config for this route,
	// by slot (httpfilter.CompilePerRoute); nil when no filter has one.
	filters []any
	// Decorator is the value of x-envoy-decorator-operation a connection
	// manager with egress tracing sends upstream: the decorator's
	// operation, made once here; nil without a decorator or when its
	// propagate is false. Callers must not change it.
	Decorator []string
	// Operation is the decorator's operation, the name of the request's
	// span ("" without a decorator).
	Operation string
}

// RouteName is the route's name (httpfilter.Route).
func (rt *Route) RouteName() string { return rt.Name }

// FilterConfig is the per-route config the filter in slot compiled for
// this route, nil for none (httpfilter.Route). It does not allocate.
func (rt *Route) FilterConfig(slot httpfilter.Slot) any {
	if rt.filters == nil {
		return nil
	}
	return rt.filters[slot]
}

// DecoratorHeader is the header that carries a route's decorator
// operation upstream (Envoy's x-envoy-decorator-operation).
const DecoratorHeader = "X-Envoy-Decorator-Operation"

func compileRoute(r *route.Route, vh *route.VirtualHost) (*Route, error) {
	if err := checkRoute(r); err != nil {
		return nil, err
	}
	cr := &Route{Name: r.Name, VHost: vh.Name}
	m := r.GetMatch()
	pm, err := compilePathMatch(m)
	if err != nil {
		return nil, err
	}
	cr.path = pm
	for _, h := range m.GetHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			return nil, err
		}
		cr.headers = append(cr.headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatch(q)
		if err != nil {
			return nil, err
		}
		cr.query = append(cr.query, qm)
	}
	if cr.Action, err = compileAction(r); err != nil {
		return nil, err
	}
	if err := checkConnectRoute(cr); err != nil {
		return nil, err
	}
	cr.Operation = r.GetDecorator().GetOperation()
	if d := r.GetDecorator(); d != nil && d.Operation != "" && (d.Propagate == nil || d.Propagate.Value) {
		cr.Decorator = []string{d.Operation}
	}
	if err := checkPerFilterConfig(r, vh); err != nil {
		return nil, err
	}
	if cr.filters, err = httpfilter.CompilePerRoute(&httpfilter.PerRouteInput{Route: r, VirtualHost: vh}); err != nil {
		return nil, err
	}
	return cr, nil
}

// checkPerFilterConfig rejects typed_per_filter_config for filters the
// proxy does not have (each registered filter compiles its own entry). A
// weighted cluster's, which no filter reads, is not on the allow-list
// (fields.go).
func checkPerFilterConfig(r *route.Route, vh *route.VirtualHost) error {
	for _, cfg := range []map[string]*anypb.Any{vh.TypedPerFilterConfig, r.TypedPerFilterConfig} {
		for _, name := range slices.Sorted(maps.Keys(cfg)) {
			if !httpfilter.Registered(name) {
				return fmt.Errorf("typed_per_filter_config for %q is not supported", name)
			}
		}
	}
	return nil
}

// Match finds the route for r: the virtual host by authority (exact, then
// the longest suffix wildcard, then prefix wildcard, then "*"), then the
// first route whose match holds. It returns nil when nothing matches.
func (t *Table) Match(r *http.Request) *Route { return t.MatchAuthority(r, r.Host) }

// Rematch is MatchAuthority for a filter re-matching the route after it
// changed the request (httpfilter.RouteTable); nil when nothing matches.
func (t *Table) Rematch(r *http.Request, authority string) httpfilter.Route {
	if rt := t.MatchAuthority(r, authority); rt != nil {
		return rt
	}
	return nil
}

// MatchAuthority is Match with the authority given (for example with its
// port stripped, as gateways do).
func (t *Table) MatchAuthority(r *http.Request, authority string) *Route {
	return t.MatchPath(r, authority, RequestPath(r))
}

// MatchPath is Match with the authority and the path (without the query)
// given: the request path passes the normalized path it routes on.
func (t *Table) MatchPath(r *http.Request, authority, path string) *Route {
	vh := t.VirtualHost(authority)
	if vh == nil {
		return nil
	}
	if vh.tlsRedirect != nil && r.TLS == nil {
		return vh.tlsRedirect
	}
	var query url.Values
	connect := r.Method == http.MethodConnect
	for _, rt := range vh.Routes {
		if !rt.path.match(path, connect) {
			continue
		}
		if !matchHeaders(rt.headers, r) {
			continue
		}
		if len(rt.query) > 0 {
			if query == nil {
				query, _ = url.ParseQuery(r.URL.RawQuery)
			}
			if !matchQuery(rt.query, query) {
				continue
			}
		}
		return rt
	}
	return nil
}

func matchHeaders(hs []headerMatch, r *http.Request) bool {
	for i := range hs {
		if !hs[i].match(r) {
			return false
		}
	}
	return true
}

func matchQuery(qs []queryMatch, q url.Values) bool {
	for i := range qs {
		if !qs[i].match(q) {
			return false
		}
	}
	return true
}

// VirtualHost picks the virtual host for an authority.
func (t *Table) VirtualHost(host string) *VirtualHost {
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	lower := strings.ToLower(host)
	if vh, ok := t.exact[lower]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		if strings.HasSuffix(lower, w.part) && len(lower) > len(w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if strings.HasPrefix(lower, w.part) && len(lower) > len(w.part) {
			return w.vh
		}
	}
	return t.any
}

// RequestPath is the request's path as sent (or as the connection
// manager normalized it), without the query; "/" when empty. It is the one
// place the request path reads the path: routing, rewrites, redirects and
// the upstream request all use it.
func RequestPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p[0] != '/' {
		// absolute-form ("GET http://host/path") or a client-side request
		p = r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			p += "?" + r.URL.RawQuery
		}
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	return p
}
