package dataplane

import (
	"fmt"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// Envoy's internal listeners
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/other_features/internal_listener):
// a listener with internal_listener instead of an address takes
// connections from inside the proxy, made to a cluster whose endpoint is
// an envoy_internal_address naming it. sluice uses them for one thing: a
// CONNECT tunnel routed to such a cluster is served by the internal
// listener's HTTP connection manager, so the tunnel's bytes are routed as
// HTTP (httpproxy/connect.go). Nothing is bound for them.

// compileInternalListener accepts an internal listener whose one filter
// chain holds an HTTP connection manager.
func compileInternalListener(l *listener.Listener, id upstream.WorkloadIdentity) (*Listener, error) {
	if l.Address != nil {
		return nil, fmt.Errorf("internal_listener with an address")
	}
	if bad := xdsfields.Unsupported(l.GetInternalListener(), nil); len(bad) > 0 {
		return nil, fmt.Errorf("internal_listener: %s: not supported", strings.Join(bad, ", "))
	}
	if len(l.ListenerFilters) > 0 {
		return nil, fmt.Errorf("internal_listener: listener filters are not supported")
	}
	if len(l.AccessLog) > 0 {
		return nil, fmt.Errorf("internal_listener: access_log is not supported")
	}
	if len(l.FilterChains) != 1 || l.FilterChains[0].FilterChainMatch != nil || l.FilterChains[0].TransportSocket != nil {
		return nil, fmt.Errorf("internal_listener: exactly one filter chain, without match or transport socket, is supported")
	}
	chain, err := compileFilterChain(l.FilterChains[0], id, l.TrafficDirection)
	if err != nil {
		return nil, fmt.Errorf("filter chain 0: %w", err)
	}
	if chain.TCP != nil {
		return nil, fmt.Errorf("internal_listener: only an http_connection_manager is supported")
	}
	return &Listener{Name: l.Name, Internal: true, Chains: []*FilterChain{chain}, RouteName: chain.RouteName, StatPrefix: chain.StatPrefix}, nil
}

// internalCluster reports whether c sends to an internal listener, and
// which: a STATIC cluster with one endpoint whose address is an
// envoy_internal_address. Connections to it are served by that listener
// (CONNECT tunnels only; see Runtime.Internal).
func internalCluster(c *cluster.Cluster) (string, bool, error) {
	var names []string
	total := 0
	for _, lle := range c.GetLoadAssignment().GetEndpoints() {
		for _, lbe := range lle.GetLbEndpoints() {
			total++
			if ia := lbe.GetEndpoint().GetAddress().GetEnvoyInternalAddress(); ia != nil {
				if ia.EndpointId != "" {
					return "", false, fmt.Errorf("envoy_internal_address: endpoint_id is not supported")
				}
				if ia.GetServerListenerName() == "" {
					return "", false, fmt.Errorf("envoy_internal_address: only server_listener_name is supported")
				}
				names = append(names, ia.GetServerListenerName())
			}
		}
	}
	switch {
	case len(names) == 0:
		return "", false, nil
	case total != 1 || c.GetType() != cluster.Cluster_STATIC:
		return "", false, fmt.Errorf("envoy_internal_address: only a STATIC cluster with that one endpoint is supported")
	case c.TransportSocket != nil || len(c.TypedExtensionProtocolOptions) > 0 || c.CircuitBreakers != nil || c.OutlierDetection != nil:
		return "", false, fmt.Errorf("envoy_internal_address: transport_socket, protocol options, circuit_breakers and outlier_detection are not supported on an internal listener's cluster")
	}
	return names[0], true, nil
}
