package httpfilter

import (
	"net"
	"net/http"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// The HTTP filter chain, after Envoy's filter manager
// (source/common/http/filter_manager.cc) and its filter factories
// (NamedHttpFilterConfigFactory, registered by name and config type): a
// filter package registers a Factory once (in its init); the connection
// manager's http_filters compile, in their order, into one Filter each
// (Factory.NewFilter, at listener compile); each route table compiles every
// registered filter's per-route config once (Factory.CompilePerRoute, at
// route compile) into the route's slot for that filter; per request the
// connection manager calls each Filter's Decode in order until one answers.

// Status is what a filter's Decode says about the request (Envoy's
// FilterHeadersStatus, reduced to what sluice's filters need).
type Status uint8

const (
	// Continue passes the request to the next filter.
	Continue Status = iota
	// Answered: the filter has answered the request (a local reply, or
	// the router's upstream answer); the chain stops.
	Answered
)

// Route is the matched route as a filter sees it: its name and the
// per-route config each filter compiled for it (nil for none). The route
// table's routes (router.Route) implement it.
type Route interface {
	RouteName() string
	// FilterConfig is what the factory registered in slot compiled for
	// this route (CompilePerRoute); nil when it compiled nothing.
	FilterConfig(slot Slot) any
}

// Stream is one request as the filters see it (Envoy's decoder filter
// callbacks with the stream info). The connection manager makes one per
// request; filters read and change it in order.
type Stream struct {
	// W is where the answer goes; a filter may wrap it (the CORS filter
	// adds its headers to whatever answers).
	W http.ResponseWriter
	R *http.Request
	// Route is the route matched for the request.
	Route Route
	// Info is what the request path learned about the request.
	Info RequestInfo
	// Conn is the downstream connection (addresses, SNI, verified peer
	// identity); never nil once the connection manager runs the filters.
	Conn *Conn
	// Metadata is the request's dynamic metadata, written by filters
	// (jwt_authn) for later ones (rbac); nil until one writes.
	Metadata Metadata
	// Routes is the route table the request was routed with, and
	// Authority the authority it was matched on: a filter that changes
	// what routing reads re-matches the route with them (Envoy's
	// clearRouteCache: jwt_authn's clear_route_cache). Routes is nil when
	// the connection manager offers no re-matching.
	Routes    RouteTable
	Authority string
	// Clusters are the runtime's clusters (the router's targets).
	Clusters map[string]*upstream.Cluster
	// Internal maps the clusters whose endpoint is an internal listener
	// to that listener, and InternalServer serves connections on the
	// proxy's internal listeners (Envoy's envoy.bootstrap.internal_listener):
	// the router hands a CONNECT tunnel to an HTTP service to one.
	Internal       map[string]string
	InternalServer InternalServer
	// Listener are the counters of the request's connection manager,
	// Proxy the proxy-wide ones; both live across config pushes.
	Listener *ListenerScope
	Proxy    *Scope
}

// RouteTable is a compiled route table as filters see it.
type RouteTable interface {
	// Rematch finds r's route again, on authority and r's current
	// headers and path; nil when no route matches.
	Rematch(r *http.Request, authority string) Route
}

// InternalServer serves connections on the proxy's internal listeners.
type InternalServer interface {
	// HasInternal reports whether ln is an internal listener now.
	HasInternal(ln string) bool
	// ServeInternal serves conn as one connection of internal listener ln
	// until it closes.
	ServeInternal(conn net.Conn, ln string)
}

// Filter is one entry of a connection manager's http_filters, compiled
// for that connection manager; it is shared by all its requests.
type Filter interface {
	// Decode runs the filter on a request: Continue, or Answered when the
	// filter answered it.
	Decode(s *Stream) Status
}

// Slot is the index of a registered filter: the place of its per-route
// config in every compiled route and of its counters in every scope.
type Slot int

// PerRouteInput is what a filter's per-route config is compiled from: the
// route and its virtual host, as received. The filter reads its own entry
// of typed_per_filter_config (by its name), and whatever else of the route
// belongs to it (the router filter: the route action's timeout, retries,
// mirrors).
type PerRouteInput struct {
	Route       *route.Route
	VirtualHost *route.VirtualHost
}

// Factory is an HTTP filter as the proxy knows it, registered under its
// Envoy name and the type URL of its listener-level typed_config.
type Factory interface {
	// Name is the filter's name as Envoy registers it
	// ("envoy.filters.http.fault"); typed_per_filter_config is keyed by it.
	Name() string
	// ConfigType is the full name of the typed_config message
	// ("envoy.extensions.filters.http.fault.v3.HTTPFault").
	ConfigType() string
	// NewFilter checks the listener-level typed_config (nil when absent)
	// and returns the filter for one connection manager. Anything in it
	// the filter cannot honour is an error (the listener is NACKed).
	NewFilter(cfg *anypb.Any) (Filter, error)
	// CompilePerRoute compiles the filter's config for one route; nil
	// when the route has none. Anything the filter cannot honour is an
	// error (the route table is NACKed).
	CompilePerRoute(in *PerRouteInput) (any, error)
}

// Terminal is implemented by factories of filters that end the chain
// (the router): it must be the last filter, and the last filter must be
// one.
type Terminal interface{ Terminal() bool }

var (
	factories []Factory
	byName    = map[string]Slot{}
	byType    = map[string]Slot{}
)

// Register adds a filter factory and returns its slot. It is called from
// the filter package's init; registering a name or config type twice
// panics.
func Register(f Factory) Slot {
	if _, dup := byName[f.Name()]; dup {
		panic("httpfilter: filter " + f.Name() + " registered twice")
	}
	if _, dup := byType[f.ConfigType()]; dup {
		panic("httpfilter: config type " + f.ConfigType() + " registered twice")
	}
	s := Slot(len(factories))
	factories = append(factories, f)
	byName[f.Name()] = s
	byType[f.ConfigType()] = s
	return s
}

// Slots is the number of registered filters.
func Slots() int { return len(factories) }

// Lookup finds the factory of an http_filters entry as Envoy does: by the
// type URL of its typed_config when it has one, else by its name.
func Lookup(name string, cfg *anypb.Any) (Factory, bool) {
	if cfg != nil {
		s, ok := byType[string(cfg.MessageName())]
		if !ok {
			return nil, false
		}
		return factories[s], true
	}
	s, ok := byName[name]
	if !ok {
		return nil, false
	}
	return factories[s], true
}

// Registered reports whether name is a registered filter's name.
func Registered(name string) bool { _, ok := byName[name]; return ok }

// CompilePerRoute compiles every registered filter's config for one route
// into a slice indexed by slot (nil when no filter has one).
func CompilePerRoute(in *PerRouteInput) ([]any, error) {
	var out []any
	for s, f := range factories {
		cfg, err := f.CompilePerRoute(in)
		if err != nil {
			return nil, err
		}
		if cfg == nil {
			continue
		}
		if out == nil {
			out = make([]any, len(factories))
		}
		out[s] = cfg
	}
	return out, nil
}

// IsTerminal reports whether the factory's filter ends the chain.
func IsTerminal(f Factory) bool {
	t, ok := f.(Terminal)
	return ok && t.Terminal()
}
