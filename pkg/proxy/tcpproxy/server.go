// Package tcpproxy serves the connections of filter chains that proxy
// opaque TCP (Envoy's tcp_proxy): the listener (pkg/proxy/downstream) has
// chosen the chain and terminated any TLS; a cluster and a host are picked
// and bytes are copied both ways until either side closes or the
// connection is idle too long.
package tcpproxy

import (
	"context"
	"log/slog"
	"net"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// Serve proxies one downstream connection for chain (a TCP chain) and
// closes it. dc is the connection as network filters see it, filled once
// by the listener.
func Serve(conn net.Conn, chain *dataplane.FilterChain, rt *dataplane.Runtime, dc *httpfilter.Conn, log *slog.Logger) {
	defer conn.Close()
	// NETWORK FILTERS: the chain's network filters before tcp_proxy
	// (envoy.filters.network.rbac, helper rbacfilter's
	// dataplane.FilterChain.ConnFilters) run here, once per connection,
	// with dc; a filter refusing the connection closes it:
	//	for _, f := range chain.ConnFilters {
	//		if !f.Allow(dc) {
	//			return
	//		}
	//	}
	_ = dc
	route := chain.TCP
	name := route.PickCluster()
	cl := rt.Clusters[name]
	if cl == nil {
		log.Warn("tcp: cluster not found", "cluster", name)
		return
	}
	// Raw TCP in local mode carries no original destination, so a
	// passthrough cluster has nothing to go to (Dial refuses it).
	up, err := tcpconn.Dial(context.Background(), cl, "")
	if err != nil {
		log.Debug("tcp: upstream connect failed", "cluster", name, "err", err)
		return
	}
	up.Pipe(conn, route.IdleTimeout)
}
