package dataplane

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// FilterChain is one way a listener serves connections: which connections
// it takes (by TLS server name), how it terminates TLS, and which route
// table serves the requests.
type FilterChain struct {
	// Name is the chain's name (may be empty).
	Name string
	// ServerNames are the SNI names this chain takes; empty takes any
	// (informational: Listener.Select matches).
	ServerNames []string
	// TLS is set when the chain terminates TLS.
	TLS        *ServerTLS
	RouteName  string
	StatPrefix string
	// StripPort drops any port from the authority before the virtual host
	// is chosen (Envoy's strip_any_host_port).
	StripPort bool
	// HTTPFilters are the connection manager's http_filters compiled in
	// order, the router last; a filter's per-route config applies only
	// where the filter is in the chain, as in Envoy.
	HTTPFilters []httpfilter.Filter
	// Path is how request paths are normalized before routing
	// (normalize_path, merge_slashes, path_with_escaped_slashes_action).
	Path pathnorm.Options
	// Upgrades are upgrade_configs: upgrade type (lower case) to enabled;
	// a route's upgrade_configs override it.
	Upgrades map[string]bool
	// TCP is set for chains that proxy opaque TCP (tcp_proxy) instead of
	// serving HTTP; RouteName is then empty.
	TCP *TCPRoute
	// ConnFilters are the network filters before tcp_proxy
	// (envoy.filters.network.rbac), in order: each judges a connection
	// once, after it (and any TLS) is accepted; one refusing closes it.
	ConnFilters []ConnFilter
	// Tracing is what the connection manager's tracing block makes it do
	// with x-envoy-decorator-operation (TracingOff without one).
	Tracing Tracing
	// Tracer is the tracing block's provider compiled: the chain reports
	// a span per request (nil: no provider, no spans).
	Tracer *tracing.Config
	// XFCC is what the connection manager does with
	// x-forwarded-client-cert (forward_client_cert_details and
	// set_current_client_cert_details); never nil for HTTP chains.
	XFCC *XFCC
	// AccessLog is the connection manager's access_log, written when
	// each request completes.
	AccessLog accesslog.Loggers
	// Stats is the chain's istio.stats filter config (HTTP filter or
	// network filter before tcp_proxy, stats.go); nil: the chain records
	// no standard metrics.
	Stats *istiometrics.Config

	// scope caches the chain's counters (ListenerScope, chainscope.go).
	scope atomic.Pointer[chainScope]
}

// Tracing is the part of Envoy's tracing that sluice has: the decorator
// operation a connection manager with a tracing block passes on. Its
// direction is the listener's traffic_direction, as Envoy's operation name.
type Tracing uint8

const (
	// TracingOff: no tracing block; x-envoy-decorator-operation is an
	// ordinary header.
	TracingOff Tracing = iota
	// TracingIngress (inbound and unspecified listeners): the header is
	// removed from requests, so the service never sees it.
	TracingIngress
	// TracingEgress (outbound listeners): requests get the route's
	// decorator operation in the header (unless the decorator's propagate
	// is false); the header is removed from responses.
	TracingEgress
)

// ConnFilter is a compiled network filter run once per connection before
// tcp_proxy; sc holds the proxy's filter counters and state.
type ConnFilter interface {
	Allow(c *httpfilter.Conn, sc *httpfilter.Scope) bool
}

// TCPRoute is a compiled tcp_proxy: where connections go.
type TCPRoute struct {
	StatPrefix string
	Cluster    string
	Weighted   []WeightedTCP
	total      uint64
	// IdleTimeout closes a connection idle for that long (Envoy's default 1h).
	IdleTimeout time.Duration
	// AccessLog is tcp_proxy's access_log, written when a connection
	// closes.
	AccessLog accesslog.Loggers
}

// WeightedTCP is one arm of a weighted TCP split.
type WeightedTCP struct {
	Name   string
	Weight uint64
}

// PickCluster chooses the cluster for one connection.
func (t *TCPRoute) PickCluster() string {
	if len(t.Weighted) == 0 {
		return t.Cluster
	}
	n := rand.Uint64N(t.total)
	for _, w := range t.Weighted {
		if n < w.Weight {
			return w.Name
		}
		n -= w.Weight
	}
	return t.Weighted[len(t.Weighted)-1].Name
}

// compileListener accepts a listener whose filter chains each hold an
// HTTP connection manager (routes from RDS) or a tcp_proxy, in plaintext
// or terminating TLS, chosen per connection by filter_chain_match
// (chainmatch.go) as Envoy chooses them.
// listenerFields are the Listener fields a socket listener honours (an
// internal listener has its own check, internal.go): the rest — socket
// options, transparent/freebind (TPROXY interception), connection
// balancing, per-connection buffer limits, deprecated_v1, ... — are
// refused by name rather than ignored. filter_chain_matcher is refused
// below with a hint. bind_to_port and use_original_dst are iptables
// REDIRECT capture (capture.go).
var listenerFields = map[protoreflect.Name]bool{
	"name": true, "address": true, "filter_chains": true, "default_filter_chain": true, "filter_chain_matcher": true,
	"listener_filters": true, "listener_filters_timeout": true, "continue_on_listener_filters_timeout": true,
	"traffic_direction": true, "access_log": true, "bind_to_port": true, "use_original_dst": true,
}

func compileListener(l *listener.Listener, id upstream.WorkloadIdentity) (*Listener, error) {
	if l.GetInternalListener() != nil {
		if err := l.ValidateAll(); err != nil {
			return nil, err
		}
		return compileInternalListener(l, id)
	}
	if bad := xdsfields.Unsupported(l, listenerFields); len(bad) > 0 {
		hint := ""
		if l.Transparent != nil {
			hint = " (transparent is TPROXY interception; sluice captures with iptables REDIRECT only)"
		}
		return nil, fmt.Errorf("%s: not supported%s", strings.Join(bad, ", "), hint)
	}
	if err := l.ValidateAll(); err != nil {
		return nil, err
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("address: only socket addresses are supported")
	}
	if len(l.FilterChains) == 0 && l.DefaultFilterChain == nil {
		return nil, fmt.Errorf("no filter chains")
	}
	if l.FilterChainMatcher != nil {
		return nil, fmt.Errorf("filter_chain_matcher: not supported; use filter_chain_match")
	}
	out := &Listener{
		Name:    l.Name,
		Address: hostport.Join(sa.Address, sa.GetPortValue()),
		Inbound: l.TrafficDirection == core.TrafficDirection_INBOUND,
	}
	if err := compileCapture(l, sa, out); err != nil {
		return nil, err
	}
	logs, err := compileListenerAccessLog(l.AccessLog)
	if err != nil {
		return nil, err
	}
	out.AccessLog = logs
	keys, err := compileChains(l, id, out)
	if err != nil {
		return nil, err
	}
	tree, err := buildTree(out.Chains, keys)
	if err != nil {
		return nil, err
	}
	out.tree = tree
	var origDst bool
	if out.Inspector, out.HTTPInspector, origDst, err = compileInspector(l, needsInspector(keys)); err != nil {
		return nil, err
	}
	out.OriginalDst = out.OriginalDst || origDst
	for _, c := range append(out.Chains[:len(out.Chains):len(out.Chains)], out.Default) {
		if c == nil {
			continue
		}
		out.TLS = out.TLS || c.TLS != nil
		out.TCP = out.TCP || c.TCP != nil
	}
	first := out.Default
	if len(out.Chains) > 0 {
		first = out.Chains[0]
	}
	out.RouteName, out.StatPrefix = first.RouteName, first.StatPrefix
	return out, nil
}

// compileChains compiles the listener's filter chains and default chain
// into out, returning each chain's place in the match tree.
func compileChains(l *listener.Listener, id upstream.WorkloadIdentity, out *Listener) ([]chainKey, error) {
	keys := make([]chainKey, 0, len(l.FilterChains))
	for i, fc := range l.FilterChains {
		k, err := compileChainMatch(fc.GetFilterChainMatch())
		if err != nil {
			return nil, fmt.Errorf("filter chain %d: %w", i, err)
		}
		chain, err := compileFilterChain(fc, id, l.TrafficDirection)
		if err != nil {
			return nil, fmt.Errorf("filter chain %d: %w", i, err)
		}
		keys = append(keys, k)
		out.Chains = append(out.Chains, chain)
	}
	if dfc := l.DefaultFilterChain; dfc != nil {
		if dfc.FilterChainMatch != nil {
			return nil, fmt.Errorf("default_filter_chain: filter_chain_match: not allowed")
		}
		chain, err := compileFilterChain(dfc, id, l.TrafficDirection)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		out.Default = chain
	}
	return keys, nil
}

// compileListenerAccessLog compiles a listener's access_log. Envoy
// writes it for a connection no filter chain takes (NR) and for every
// served connection when it closes; the proxy writes the first only, so
// each log must be filtered to NR connections, as Istio's are
// (pilot/pkg/networking/core/accesslog.go listenerAccessLogFilter, alone
// or in an and_filter with a Telemetry filter); another is refused.
func compileListenerAccessLog(als []*accesslogv3.AccessLog) (accesslog.Loggers, error) {
	logs, err := accesslog.Compile(als)
	if err != nil {
		return nil, err
	}
	for i, lg := range logs {
		if !lg.OnlyFlagged(httpfilter.FlagNR) {
			return nil, fmt.Errorf("access_log[%d]: a listener access log must be filtered to NR (response_flag_filter {flags: [NR]}): "+
				"only connections no filter chain takes are logged here", i)
		}
	}
	return logs, nil
}

func compileFilterChain(fc *listener.FilterChain, id upstream.WorkloadIdentity, dir core.TrafficDirection) (*FilterChain, error) {
	chain := &FilterChain{Name: fc.Name}
	for _, n := range fc.GetFilterChainMatch().GetServerNames() {
		chain.ServerNames = append(chain.ServerNames, strings.ToLower(n))
	}
	if ts := fc.GetTransportSocket(); ts != nil && ts.Name != "envoy.transport_sockets.raw_buffer" {
		t, err := compileServerTLS(ts, id)
		if err != nil {
			return nil, err
		}
		chain.TLS = t
	}
	fs := fc.Filters
	// [envoy.filters.network.rbac..., tcp_proxy]: Istio's TCP chains with
	// authorization policies (pilot/pkg/security/authz/builder BuildTCP).
	for len(fs) > 1 && fs[0].Name == rbac.NetworkName {
		nf, err := rbac.CompileNetwork(fs[0].GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("network filter %s: %w", fs[0].Name, err)
		}
		chain.ConnFilters = append(chain.ConnFilters, nf)
		fs = fs[1:]
	}
	if len(fs) > 1 && fs[0].Name == StatsFilterName {
		// [rbac..., istio.stats, tcp_proxy]: Istio's TCP filter stack
		// (pilot/pkg/networking/core networkfilter.go).
		st, err := compileStatsNetwork(fs[0])
		if err != nil {
			return nil, err
		}
		chain.Stats, fs = st, fs[1:]
		if fs[0].Name != "envoy.filters.network.tcp_proxy" {
			return nil, fmt.Errorf("network filter %s: only before envoy.filters.network.tcp_proxy is supported", StatsFilterName)
		}
	}
	if len(chain.ConnFilters) > 0 && fs[0].Name != "envoy.filters.network.tcp_proxy" {
		return nil, fmt.Errorf("network filter %s: only before envoy.filters.network.tcp_proxy is supported", rbac.NetworkName)
	}
	if len(fs) != 1 {
		names := make([]string, len(fs))
		for i, f := range fs {
			names[i] = f.Name
		}
		return nil, fmt.Errorf("network filters %v: exactly one, the http_connection_manager, is supported", names)
	}
	f := fs[0]
	if f.Name == "envoy.filters.network.tcp_proxy" {
		t, err := compileTCPProxy(f)
		if err != nil {
			return nil, err
		}
		chain.TCP = t
		return chain, nil
	}
	if f.Name != "envoy.filters.network.http_connection_manager" {
		return nil, fmt.Errorf("network filter %q is not supported", f.Name)
	}
	if err := compileHCM(f, chain, dir); err != nil {
		return nil, err
	}
	return chain, nil
}

func compileTCPProxy(f *listener.Filter) (*TCPRoute, error) {
	var tp tcpproxyv3.TcpProxy
	if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	if err := tp.ValidateAll(); err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	if tp.TunnelingConfig != nil || tp.HashPolicy != nil || tp.MetadataMatch != nil {
		return nil, fmt.Errorf("tcp_proxy: tunneling_config, hash_policy and metadata_match are not supported")
	}
	if tp.AccessLogOptions != nil || tp.AccessLogFlushInterval != nil || tp.FlushAccessLogOnConnected {
		return nil, fmt.Errorf("tcp_proxy: access_log_options, access_log_flush_interval and flush_access_log_on_connected are not supported (a connection is logged when it closes)")
	}
	logs, err := accesslog.Compile(tp.AccessLog)
	if err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	t := &TCPRoute{StatPrefix: tp.StatPrefix, IdleTimeout: time.Hour, AccessLog: logs}
	if d := tp.GetIdleTimeout(); d != nil {
		t.IdleTimeout = d.AsDuration()
	}
	switch c := tp.ClusterSpecifier.(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		t.Cluster = c.Cluster
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		for _, w := range c.WeightedClusters.GetClusters() {
			t.Weighted = append(t.Weighted, WeightedTCP{Name: w.Name, Weight: uint64(w.Weight)})
			t.total += uint64(w.Weight)
		}
		if t.total == 0 {
			return nil, fmt.Errorf("tcp_proxy: weighted clusters with total weight 0")
		}
	default:
		return nil, fmt.Errorf("tcp_proxy: no cluster")
	}
	return t, nil
}
