package xdsgen

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluice-mesh/sluice/pkg/xdsgen/security"
)

// The seam between listener builders and the security filters
// (AuthorizationPolicy, RequestAuthentication; pkg/xdsgen/security):
// inbound HTTP connection managers of sidecars and every gateway
// connection manager start with securityHTTPFilters (jwt_authn, then the
// rbac filters, before fault, CORS and the router, as Istio's
// buildHTTPConnectionManager orders them); inbound and gateway TCP chains
// get securityNetworkFilters before tcp_proxy (Istio's
// buildCompleteNetworkFilters). Sidecar outbound listeners get none, as
// in Istio.

// securityFilters computes the proxy's filters once per generation.
func (g *generation) securityFilters() (*securityFilterSet, error) {
	if g.sec != nil {
		return g.sec, nil
	}
	w := security.WorkloadOf(g.proxy)
	h, err := security.HTTPFilters(g.push, w)
	if err != nil {
		return nil, fmt.Errorf("security filters: %w", err)
	}
	n, err := security.NetworkFilters(g.push, w)
	if err != nil {
		return nil, fmt.Errorf("security filters: %w", err)
	}
	g.sec = &securityFilterSet{http: h.HTTP, network: n.Network}
	return g.sec, nil
}

type securityFilterSet struct {
	http    []*hcm.HttpFilter
	network []*listener.Filter
}

// securityHTTPFilters are the filters an inbound or gateway connection
// manager starts with.
func (g *generation) securityHTTPFilters() ([]*hcm.HttpFilter, error) {
	s, err := g.securityFilters()
	if err != nil {
		return nil, err
	}
	return s.http, nil
}

// secureTCPChains puts the network rbac filters before the tcp_proxy of
// each inbound or gateway TCP chain.
func (g *generation) secureTCPChains(chains ...*listener.FilterChain) error {
	s, err := g.securityFilters()
	if err != nil {
		return err
	}
	if len(s.network) == 0 {
		return nil
	}
	for _, c := range chains {
		c.Filters = append(append([]*listener.Filter{}, s.network...), c.Filters...)
	}
	return nil
}
