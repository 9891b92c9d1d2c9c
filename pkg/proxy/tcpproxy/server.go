// Package tcpproxy serves the connections of filter chains that proxy
// opaque TCP (Envoy's tcp_proxy): the listener (pkg/proxy/downstream) has
// chosen the chain and terminated any TLS; the chain's network filters
// (envoy.filters.network.rbac) judge the connection, then a cluster and a
// host are picked and bytes are copied both ways until either side closes
// or the connection is idle too long.
package tcpproxy

import (
	"context"
	"log/slog"
	"net"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// Connection is one downstream connection of a TCP chain.
type Connection struct {
	Chain   *dataplane.FilterChain
	Runtime *dataplane.Runtime
	// Conn is the connection as network filters see it, filled once by
	// the listener.
	Conn *httpfilter.Conn
	// Scope holds the proxy's filter counters and decisions, which live
	// across config pushes.
	Scope  *httpfilter.Scope
	Logger *slog.Logger
	// Metrics are the proxy's standard metrics (nil: none), and Inbound
	// says the listener is inbound (reporter=destination).
	Metrics *istiometrics.Metrics
	Inbound bool
}

// Serve proxies conn as c says and closes it. A network filter refusing
// the connection (an RBAC denial) closes it before any upstream is dialled.
func Serve(conn net.Conn, c Connection) {
	defer conn.Close()
	for _, f := range c.Chain.ConnFilters {
		if !f.Allow(c.Conn, c.Scope) {
			return
		}
	}
	route := c.Chain.TCP
	name := route.PickCluster()
	cl := c.Runtime.Clusters[name]
	if cl == nil {
		c.Logger.Warn("tcp: cluster not found", "cluster", name)
		return
	}
	// Raw TCP in local mode carries no original destination, so a
	// passthrough cluster has nothing to go to (Dial refuses it).
	up, err := tcpconn.Dial(context.Background(), cl, "")
	if err != nil {
		c.Logger.Debug("tcp: upstream connect failed", "cluster", name, "err", err)
		return
	}
	if c.Metrics != nil {
		// Opened once the upstream is connected, as Envoy's tcp_proxy
		// reports; bytes counted as they pass; closed when the pipe ends.
		ctr := c.Metrics.OpenTCP(istiometrics.TCPConn{Conn: c.Conn, Inbound: c.Inbound, Cluster: name})
		defer ctr.Closed()
		conn = ctr.Conn(conn)
	}
	up.Pipe(conn, route.IdleTimeout)
}
