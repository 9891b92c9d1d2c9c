// Package dataplane compiles the xDS resources a proxy accepted into an
// immutable Runtime: listeners, route tables and clusters ready for the
// request path. A new Runtime is built for every accepted update and
// swapped in atomically; requests in flight finish on the one they began
// with.
package dataplane

import (
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// Runtime is one compiled config generation.
type Runtime struct {
	Listeners map[string]*Listener
	Routes    map[string]*router.Table
	Clusters  map[string]*upstream.Cluster
	// Internal maps the clusters that send to an internal listener
	// (internal.go) to that listener's name; they are not in Clusters.
	Internal map[string]string
	// Services are the destination services of the clusters whose
	// metadata names one (stats.go), for the standard metrics.
	Services map[string]*istiometrics.Service
	// Warming lists resources referenced but not received yet.
	Warming []string
	// warmingRoutes are the route tables checked but not served, as their
	// first VHDS answer has not come; the next compile starts from them.
	warmingRoutes map[string]*router.Table
	// vhds are the VHDS virtual hosts grouped by route configuration
	// (compile.go vhdsGroups), with the map they were grouped from.
	vhds vhdsGrouping
	// byAddr indexes the socket listeners by address, for the hand-off
	// of captured connections (capture.go).
	byAddr map[netip.AddrPort]*Listener
	// Source is the xDS the runtime was built from, for /config_dump.
	Source xdsclient.Resources
	Built  time.Time
	// Counts says what building this runtime compiled and what it took
	// unchanged from the one before.
	Counts CompileCounts
}

// Listener is where the proxy accepts connections and the filter chains
// that serve them.
type Listener struct {
	Name    string
	Address string
	Inbound bool
	Chains  []*FilterChain
	// Default is the default_filter_chain: connections no chain matches
	// (nil: they are closed).
	Default *FilterChain
	// Inspector is set when connections are inspected for a TLS
	// ClientHello before a chain is chosen (the tls_inspector, listed or
	// needed by the chains' matches).
	Inspector *Inspector
	// HTTPInspector is set when plaintext connections are sniffed for
	// HTTP (the http_inspector listed).
	HTTPInspector *HTTPInspector
	// TLS is true when some chain terminates TLS; TCP when some chain
	// proxies opaque TCP (informational: each connection is served by the
	// chain it matches, Select).
	TLS bool
	TCP bool
	// Internal listeners (Envoy's internal_listener) have no address and
	// are not bound: the proxy hands them connections itself.
	Internal bool
	// RouteName and StatPrefix are the first chain's (admin output).
	RouteName  string
	StatPrefix string
	// AccessLog is the listener's access_log (Envoy's listener access
	// logs, ActiveStreamListenerBase::emitLogs): written for a connection
	// no filter chain takes (flag NR, details filter_chain_not_found)
	// and for every served connection when it closes. Istio's carry an
	// NR response flag filter, so only refused connections are logged.
	AccessLog accesslog.Loggers
	// Unbound is bind_to_port false: the listener is not bound and only
	// serves connections a use_original_dst listener hands it
	// (capture.go).
	Unbound bool
	// OriginalDst: each accepted connection's local address is restored
	// to its original destination (the original_dst listener filter, or
	// use_original_dst); HandOff: such a connection is handed to the
	// listener of that address (use_original_dst).
	OriginalDst, HandOff bool
	// addr is the listener's address parsed (the hand-off index).
	addr netip.AddrPort
	// tree is the compiled filter_chain_match tree (chainmatch.go).
	tree *chainTree
}

// Ready reports whether everything referenced has arrived.
func (rt *Runtime) Ready() bool { return rt != nil && len(rt.Warming) == 0 && len(rt.Listeners) > 0 }

// ListenerNames returns listener names in order.
func (rt *Runtime) ListenerNames() []string { return slices.Sorted(maps.Keys(rt.Listeners)) }

// StatsStore keeps cluster counters by name across runtimes.
type StatsStore struct {
	mu       sync.Mutex
	clusters map[string]*upstream.Stats
}

// NewStatsStore makes an empty store.
func NewStatsStore() *StatsStore { return &StatsStore{clusters: map[string]*upstream.Stats{}} }

// Cluster returns the counters of a cluster, creating them on first use.
func (s *StatsStore) Cluster(name string) *upstream.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.clusters[name]
	if st == nil {
		st = &upstream.Stats{}
		s.clusters[name] = st
	}
	return st
}

// Each calls f for every cluster's counters in name order.
func (s *StatsStore) Each(f func(name string, st *upstream.Stats)) {
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.clusters))
	s.mu.Unlock()
	for _, n := range names {
		f(n, s.Cluster(n))
	}
}

// vhdsGrouping is a view's VirtualHost map grouped by route configuration.
type vhdsGrouping struct {
	items  map[string]proto.Message
	groups map[string][]*route.VirtualHost
}
