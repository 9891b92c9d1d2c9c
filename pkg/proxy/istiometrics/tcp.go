package istiometrics

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/telemetryexpr"
)

// TCPConn is a TCP proxy connection as the standard metrics label it.
type TCPConn struct {
	Conn *httpfilter.Conn
	// Config is the chain's stats network filter config (nil:
	// DefaultConfig).
	Config *Config
	// Inbound: the connection arrived on an inbound listener
	// (reporter=destination).
	Inbound bool
	// Cluster is the cluster it was proxied to, and Service the
	// destination service of its metadata (nil when it has none).
	Cluster string
	Service *Service
	// UpstreamLocalPrincipal and UpstreamPeerPrincipal are the upstream
	// TLS connection's identities (outbound; "" for plaintext).
	UpstreamLocalPrincipal, UpstreamPeerPrincipal string
}

type tcpKey struct {
	cfg                       *Config
	svc                       *Service
	principal, local, cluster string
	inbound, mtls             bool
	exprs                     [maxKeyExprs]string
}

// TCPCounters are one connection's bound counters (nil: dropped).
type TCPCounters struct {
	sent, received, opened, closed prometheus.Counter
}

// OpenTCP counts a proxied TCP connection opened and returns its
// counters. There is no metadata exchange on TCP here (Istio's is
// ALPN-negotiated in the TLS handshake), so the peer's side is unknown
// but for its verified principal (the downstream's inbound, the
// upstream server's outbound); the request attributes of value
// expressions are absent.
func (m *Metrics) OpenTCP(c TCPConn) *TCPCounters {
	cfg := c.Config
	if cfg == nil {
		cfg = DefaultConfig
	}
	k := tcpKey{cfg: cfg, svc: c.Service, cluster: c.Cluster, inbound: c.Inbound}
	if c.Inbound && c.Conn != nil && c.Conn.TLS != nil && c.Conn.PeerPrincipal != "" {
		k.mtls, k.principal = true, c.Conn.PeerPrincipal
	} else if !c.Inbound {
		k.principal, k.local = c.UpstreamPeerPrincipal, c.UpstreamLocalPrincipal
	}
	fams := m.fams.Load()
	var vals []string
	if len(cfg.exprs) > 0 {
		a := &telemetryexpr.Attrs{}
		m.connAttrs(a, c.Conn, c.Inbound, "")
		vals = make([]string, len(cfg.exprs))
		for i, x := range cfg.exprs {
			vals[i] = x.Eval(a)
		}
		copy(k.exprs[:], vals)
	}
	ctr, ok := fams.tcp.get(k)
	if !ok || len(cfg.exprs) > maxKeyExprs {
		ctr = m.bindTCP(fams, &k, vals)
		if len(cfg.exprs) <= maxKeyExprs {
			fams.tcp.put(k, ctr)
		}
	}
	if ctr.opened != nil {
		ctr.opened.Inc()
	}
	return ctr
}

func (m *Metrics) bindTCP(fams *families, k *tcpKey, exprVals []string) *TCPCounters {
	ls := m.resolve(sides{inbound: k.inbound, principal: k.principal, local: k.local, mtls: k.mtls},
		destination{svc: k.svc, cluster: k.cluster}, "tcp")
	counter := func(id metricID) prometheus.Counter {
		if k.cfg.plans[id].drop {
			return nil
		}
		f := fams.f[id]
		return f.counter.WithLabelValues(f.values(id, k.cfg, ls, exprVals)...)
	}
	return &TCPCounters{sent: counter(mTCPSent), received: counter(mTCPReceived),
		opened: counter(mTCPOpened), closed: counter(mTCPClosed)}
}

// Closed counts the connection closed.
func (t *TCPCounters) Closed() {
	if t.closed != nil {
		t.closed.Inc()
	}
}

// Conn wraps a downstream connection so the bytes it carries are counted
// as they pass: received from the downstream, sent to it.
func (t *TCPCounters) Conn(c net.Conn) net.Conn { return &countingConn{Conn: c, t: t} }

type countingConn struct {
	net.Conn
	t *TCPCounters
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.t.received != nil {
		c.t.received.Add(float64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.t.sent != nil {
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
