package dataplane

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// FilterChain is one way a listener serves connections: which connections
// it takes (by TLS server name), how it terminates TLS, and which route
// table serves the requests.
type FilterChain struct {
	// ServerNames are the SNI names this chain takes; empty takes any.
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

// compileListener accepts a listener whose filter chains each hold one
// HTTP connection manager taking routes from RDS, in plaintext or behind
// TLS chosen by SNI.
func compileListener(l *listener.Listener, id upstream.WorkloadIdentity) (*Listener, error) {
	if err := l.ValidateAll(); err != nil {
		return nil, err
	}
	if l.GetInternalListener() != nil {
		return compileInternalListener(l, id)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("address: only socket addresses are supported")
	}
	for _, lf := range l.ListenerFilters {
		if lf.Name != "envoy.filters.listener.tls_inspector" {
			return nil, fmt.Errorf("listener filter %q is not supported", lf.Name)
		}
	}
	if len(l.FilterChains) == 0 {
		return nil, fmt.Errorf("no filter chains")
	}
	out := &Listener{
		Name:    l.Name,
		Address: hostport.Join(sa.Address, sa.GetPortValue()),
		Inbound: l.TrafficDirection == core.TrafficDirection_INBOUND,
	}
	for i, fc := range l.FilterChains {
		chain, err := compileFilterChain(fc, id, l.TrafficDirection)
		if err != nil {
			return nil, fmt.Errorf("filter chain %d: %w", i, err)
		}
		out.Chains = append(out.Chains, chain)
		if chain.TLS != nil {
			out.TLS = true
		}
		if chain.TCP != nil {
			out.TCP = true
		}
	}
	if out.TCP {
		for i, c := range out.Chains {
			if c.TCP == nil {
				return nil, fmt.Errorf("filter chain %d: HTTP and TCP chains on one listener are not supported", i)
			}
		}
		return out, nil
	}
	if out.TLS {
		for i, c := range out.Chains {
			if c.TLS == nil {
				return nil, fmt.Errorf("filter chain %d: plaintext and TLS chains on one listener are not supported", i)
			}
		}
	} else if len(out.Chains) > 1 {
		return nil, fmt.Errorf("%d plaintext filter chains: only TLS chains can be told apart (by SNI)", len(out.Chains))
	}
	first := out.Chains[0]
	out.RouteName, out.StatPrefix = first.RouteName, first.StatPrefix
	return out, nil
}

func compileFilterChain(fc *listener.FilterChain, id upstream.WorkloadIdentity, dir core.TrafficDirection) (*FilterChain, error) {
	chain := &FilterChain{}
	if m := fc.GetFilterChainMatch(); m != nil {
		if m.DestinationPort != nil || len(m.PrefixRanges) > 0 || len(m.SourcePrefixRanges) > 0 || len(m.SourcePorts) > 0 ||
			len(m.ApplicationProtocols) > 0 || m.TransportProtocol != "" || len(m.DirectSourcePrefixRanges) > 0 {
			return nil, fmt.Errorf("filter_chain_match: only server_names is supported")
		}
		for _, n := range m.ServerNames {
			chain.ServerNames = append(chain.ServerNames, strings.ToLower(n))
		}
	}
	if ts := fc.GetTransportSocket(); ts != nil {
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

// ChainFor picks the chain for a TLS server name: an exact name, then the
// longest matching "*.suffix" wildcard, then a chain without names.
func (l *Listener) ChainFor(serverName string) *FilterChain {
	serverName = strings.ToLower(serverName)
	var wildcard, fallback *FilterChain
	best := -1
	for _, c := range l.Chains {
		if len(c.ServerNames) == 0 {
			if fallback == nil {
				fallback = c
			}
			continue
		}
		for _, n := range c.ServerNames {
			switch {
			case n == serverName:
				return c
			case strings.HasPrefix(n, "*") && strings.HasSuffix(serverName, n[1:]) && len(n) > best:
				wildcard, best = c, len(n)
			}
		}
	}
	if wildcard != nil {
		return wildcard
	}
	return fallback
}

func compileTCPProxy(f *listener.Filter) (*TCPRoute, error) {
	var tp tcpproxyv3.TcpProxy
	if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	if err := tp.ValidateAll(); err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	if len(tp.AccessLog) > 0 || tp.TunnelingConfig != nil || tp.HashPolicy != nil || tp.MetadataMatch != nil {
		return nil, fmt.Errorf("tcp_proxy: access_log, tunneling_config, hash_policy and metadata_match are not supported")
	}
	t := &TCPRoute{StatPrefix: tp.StatPrefix, IdleTimeout: time.Hour}
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
