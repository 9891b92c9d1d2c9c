package istiometrics

import (
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// TCPConn is a TCP proxy connection as the standard metrics label it.
type TCPConn struct {
	Conn *httpfilter.Conn
	// Inbound: the connection arrived on an inbound listener
	// (reporter=destination).
	Inbound bool
	// Cluster is the cluster it was proxied to.
	Cluster string
}

type tcpKey struct {
	principal, cluster string
	inbound, mtls      bool
}

// TCPCounters are one connection's bound counters.
type TCPCounters struct {
	sent, received, opened, closed prometheus.Counter
}

// OpenTCP counts a proxied TCP connection opened and returns its
// counters. There is no metadata exchange on TCP here (Istio's is
// ALPN-negotiated in the TLS handshake), so the peer's side is unknown
// but for its verified principal.
func (m *Metrics) OpenTCP(c TCPConn) *TCPCounters {
	k := tcpKey{cluster: c.Cluster, inbound: c.Inbound}
	if c.Inbound && c.Conn != nil && c.Conn.TLS != nil && c.Conn.PeerPrincipal != "" {
		k.mtls, k.principal = true, c.Conn.PeerPrincipal
	}
	ctr, ok := m.tcp.get(k)
	if !ok {
		ls := m.resolve(k.inbound, "", k.principal, k.mtls, k.cluster, "tcp")
		if k.inbound {
			// An inbound cluster (inbound|port||) names no service.
			ls.service, ls.serviceName, ls.svcNS = "unknown", "unknown", "unknown"
			if i := strings.LastIndexByte(k.cluster, '|'); i >= 0 && i+1 < len(k.cluster) {
				ls.service = k.cluster[i+1:]
				ls.serviceName, ls.svcNS = serviceNameNamespace(ls.service)
			}
		}
		v := ls.values(false)
		ctr = &TCPCounters{sent: m.tcpSent.WithLabelValues(v...), received: m.tcpReceived.WithLabelValues(v...),
			opened: m.tcpOpened.WithLabelValues(v...), closed: m.tcpClosed.WithLabelValues(v...)}
		m.tcp.put(k, ctr)
	}
	ctr.opened.Inc()
	return ctr
}

// Closed counts the connection closed.
func (t *TCPCounters) Closed() { t.closed.Inc() }

// Conn wraps a downstream connection so the bytes it carries are counted
// as they pass: received from the downstream, sent to it.
func (t *TCPCounters) Conn(c net.Conn) net.Conn { return &countingConn{Conn: c, t: t} }

type countingConn struct {
	net.Conn
	t *TCPCounters
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.received.Add(float64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.t.sent.Add(float64(n))
	}
	return n, err
}

// CloseWrite half-closes the connection when it can (the pipe's
// half-close), else closes it.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
