// Package tcpproxy serves the connections of filter chains that proxy
// opaque TCP (Envoy's tcp_proxy): the listener (pkg/proxy/downstream) has
// chosen the chain and terminated any TLS; the chain's network filters
// (envoy.filters.network.rbac) judge the connection, then a cluster and a
// host are picked and bytes are copied both ways until either side closes
// or the connection is idle too long.
package tcpproxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
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
// The chain's access log gets one line when the connection closes; the
// standard metrics count it from the upstream connect to the close.
func Serve(conn net.Conn, c Connection) {
	defer conn.Close()
	route := c.Chain.TCP
	info := httpfilter.RequestInfo{Start: time.Now()}
	if len(route.AccessLog) > 0 {
		defer func() {
			e := accesslog.Entry{Info: &info, Conn: c.Conn, End: time.Now()}
			route.AccessLog.Log(&e)
		}()
	}
	for _, f := range c.Chain.ConnFilters {
		if !f.Allow(c.Conn, c.Scope) {
			info.Details = "connection denied by a network filter"
			return
		}
	}
	name := route.PickCluster()
	info.Cluster = name
	cl := c.Runtime.Clusters[name]
	if cl == nil {
		info.Flags |= httpfilter.FlagNC
		c.Logger.Warn("tcp: cluster not found", "cluster", name)
		return
	}
	// A passthrough (ORIGINAL_DST) cluster connects to the connection's
	// original destination, restored by the listener (capture); raw TCP
	// in local mode has none, so Dial refuses it.
	dest := ""
	if cl.Kind == upstream.OriginalDst && c.Conn.OriginalDst {
		dest = c.Conn.LocalAddr.String()
	}
	up, err := tcpconn.Dial(context.Background(), cl, dest)
	if err != nil {
		info.Flags |= dialFlag(err)
		info.Details = err.Error()
		c.Logger.Debug("tcp: upstream connect failed", "cluster", name, "err", err)
		return
	}
	info.Upstream = up.RemoteAddr().String()
	if h := up.Host(); h != nil {
		info.Upstream = h.Address
	}
	if a, ok := up.LocalAddr().(*net.TCPAddr); ok {
		info.UpstreamLocal = a.AddrPort()
	}
	pr := up.Principals()
	info.UpstreamLocalPrincipal, info.UpstreamPeerPrincipal = pr.Local, pr.Peer
	if c.Metrics != nil && c.Chain.Stats != nil {
		// Only a chain with the istio.stats network filter records.
		// Opened once the upstream is connected, as Envoy's tcp_proxy
		// reports; bytes counted as they pass; closed when the pipe ends.
		ctr := c.Metrics.OpenTCP(istiometrics.TCPConn{Conn: c.Conn, Config: c.Chain.Stats, Inbound: c.Inbound,
			Cluster: name, Service: c.Runtime.Services[name],
			UpstreamLocalPrincipal: pr.Local, UpstreamPeerPrincipal: pr.Peer})
		defer ctr.Closed()
		conn = ctr.Conn(conn)
	}
	info.BytesReceived, info.BytesSent = up.Pipe(conn, route.IdleTimeout)
}

// dialFlag is the response flag of a failed upstream connection, as
// Envoy's tcp_proxy sets them: UO overflow, UH no healthy host, else UF.
func dialFlag(err error) httpfilter.Flags {
	switch {
	case errors.Is(err, tcpconn.ErrOverflow):
		return httpfilter.FlagUO
	case errors.Is(err, tcpconn.ErrNoHealthyHost):
		return httpfilter.FlagUH
	}
	return httpfilter.FlagUF
}
