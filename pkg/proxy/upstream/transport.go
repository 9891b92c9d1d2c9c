package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TransportOptions are the connection settings a cluster's pool is built
// from; a cluster whose options did not change keeps its pool.
type TransportOptions struct {
	ConnectTimeout time.Duration
	// HTTP2 speaks h2c to the hosts; UseDownstreamProtocol speaks whatever
	// the request came in with (Envoy's use_downstream_protocol_config).
	HTTP2                 bool
	UseDownstreamProtocol bool
	// IdleTimeout closes connections idle this long (Envoy's common
	// idle_timeout, 1h by default).
	IdleTimeout time.Duration
	// MaxRequestsPerConnection closes a connection after this many
	// requests; MaxConnectionDuration after it has been open this long
	// (checked when a request takes it). 0 means no limit.
	MaxRequestsPerConnection uint32
	MaxConnectionDuration    time.Duration
	// TLS is the TLS the cluster originates (zero: plaintext).
	TLS TLSOptions
	// Identity is the proxy's mesh identity for ISTIO_MUTUAL clusters; the
	// same object for the proxy's whole life.
	Identity WorkloadIdentity
	// Hosts overrides name resolution (sluice proxy --hosts-file); the
	// same object for the proxy's whole life, so it compares equal.
	Hosts *Hosts
	// Keepalive sets TCP keepalive on upstream sockets (Envoy's
	// upstream_connection_options.tcp_keepalive): Enabled with the probe
	// count, idle time and interval, zero meaning the OS default.
	Keepalive KeepaliveOptions
	// SourceIP, when valid, is the local address connections are bound
	// to (port 0): a sidecar's workload address in local mode, so servers
	// see the workload's IP as a pod's connections show it. A loopback
	// source is used only towards loopback destinations (the kernel
	// cannot route it elsewhere).
	SourceIP netip.Addr
	// BindSource, when valid, is the cluster's upstream_bind_config
	// source address: every connection is bound to it, whatever its
	// destination (SourceIP is then not used).
	BindSource netip.Addr
}

// KeepaliveOptions are TCP keepalive settings.
type KeepaliveOptions struct {
	Enabled  bool
	Probes   uint32
	Idle     time.Duration
	Interval time.Duration
}

// DefaultIdleTimeout is Envoy's upstream idle timeout default.
const DefaultIdleTimeout = time.Hour

// Transport is a cluster's connection pool: per host, HTTP/1.1
// connections or multiplexed HTTP/2 ones (h2c, or h2 over TLS by ALPN),
// with Envoy's accounting (pool.go). Connections are counted in the
// cluster's stats and on the host they go to.
type Transport struct {
	Options TransportOptions
	// RT makes the connections of an HTTP/2 cluster (nil for HTTP/1.1,
	// whose connections are h1Conns, h1conn.go); H2 the h2c ones for
	// HTTP/2 requests when the cluster uses the downstream protocol.
	// Only their NewClientConn is used: the pools below keep the
	// connections.
	RT *http.Transport
	H2 *http.Transport

	stats *Stats
	hosts atomic.Pointer[map[string]*Host]
	// pools are the host pools by address (of H2 for h2pools), swept for
	// idle connections until closed is closed.
	pools     poolSet
	h2pools   *poolSet
	sweepOnce sync.Once
	closed    chan struct{}
	closeOnce sync.Once
	dialer    *net.Dialer
	// tlsBase is the client TLS config its connections copy (tls.go).
	tlsBase tlsBase
}

// NewTransport builds a pool for opts counting connections in stats (which
// may be nil).
func NewTransport(opts TransportOptions, stats *Stats) *Transport {
	if stats == nil {
		stats = &Stats{}
	}
	t := &Transport{Options: opts, stats: stats, closed: make(chan struct{})}
	t.dialer = newDialer(opts)
	h2 := opts.HTTP2 && !opts.UseDownstreamProtocol
	if h2 {
		t.RT = t.newRT(true)
	}
	t.pools.rt, t.pools.h2, t.pools.h2c = t.RT, h2, h2 && !opts.TLS.Enabled
	if opts.UseDownstreamProtocol {
		t.H2 = t.newRT(true)
		t.h2pools = &poolSet{rt: t.H2, h2: true, h2c: !opts.TLS.Enabled}
	}
	return t
}

// newDialer is the dialer of a transport's connections: its connect
// timeout and TCP keepalive.
func newDialer(opts TransportOptions) *net.Dialer {
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	if ka := opts.Keepalive; ka.Enabled {
		cfg := net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
		if ka.Idle > 0 {
			cfg.Idle = ka.Idle
		}
		if ka.Interval > 0 {
			cfg.Interval = ka.Interval
		}
		if ka.Probes > 0 {
			cfg.Count = int(ka.Probes)
		}
		dialer.KeepAliveConfig = cfg
	}
	return dialer
}

func (t *Transport) newRT(h2 bool) *http.Transport {
	opts := t.Options
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	rt := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return t.dialCounted(ctx, network, addr, nil)
		},
		// Connections come from NewClientConn and live in the host pools
		// (pool.go), bounded by max_connections; this Transport keeps none.
		IdleConnTimeout:       idle,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		DisableKeepAlives:     opts.MaxRequestsPerConnection == 1,
		ResponseHeaderTimeout: 0,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	p := new(http.Protocols)
	switch {
	case h2 && opts.TLS.Enabled:
		// h2 over TLS is negotiated by ALPN (the cluster's alpn_protocols,
		// "h2" by default); a server that does not offer it is spoken to in
		// HTTP/1.1.
		p.SetHTTP2(true)
		p.SetHTTP1(true)
		rt.ForceAttemptHTTP2 = true // net/http leaves h2 off with a custom TLS dial otherwise
	case h2:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	rt.Protocols = p
	if opts.TLS.Enabled {
		// TLS is done by the transport's TLS dial, so net/http sees the
		// negotiated protocol and speaks h2 when ALPN chose it. Requests
		// go out as https (RoundTrip).
		rt.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return t.dialCounted(ctx, network, addr, t.alpn(h2))
		}
	}
	return rt
}

// alpn is what a connection offers: the cluster's alpn_protocols or, when
// it names none, the protocol of the pool, as Envoy's HTTP pools set a
// fallback ALPN (h2 for HTTP/2 pools, http/1.1 for HTTP/1.1 ones). An
// HTTP/1.1 pool does not offer h2: a server choosing it would get HTTP/1.1
// bytes (with use_downstream_protocol the HTTP/2 pool offers it).
func (t *Transport) alpn(h2 bool) []string {
	var out []string
	if t.Options.TLS.ALPN != "" {
		for _, p := range strings.Split(t.Options.TLS.ALPN, ",") {
			if h2 || p != "h2" {
				out = append(out, p)
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	if h2 {
		return []string{"h2"}
	}
	return []string{"http/1.1"}
}

// dialCounted opens a connection counted in upstream_cx_total and
// upstream_cx_active (cluster and host) from the start of the dial until
// it closes, as Envoy counts connections against max_connections. A dial
// the pool already counted carries a *dialCounted in ctx. alpn non-nil
// originates TLS offering those protocols.
func (t *Transport) dialCounted(ctx context.Context, network, addr string, alpn []string) (net.Conn, error) {
	if dc, ok := ctx.Value(dialCountedKey{}).(*dialCounted); ok {
		dc.started.Store(true)
	} else {
		t.stats.CxActive.Add(1)
	}
	t.stats.CxTotal.Add(1)
	h := t.hostFor(addr)
	if h != nil {
		h.CxTotal.Add(1)
		h.CxActive.Add(1)
	}
	fail := func(err error) (net.Conn, error) {
		t.stats.CxActive.Add(-1)
		t.stats.CxConnectFail.Add(1)
		if h != nil {
			h.CxActive.Add(-1)
			h.CxConnectFail.Add(1)
		}
		return nil, err
	}
	c, err := t.dialRaw(ctx, network, addr)
	if err != nil {
		return fail(err)
	}
	tc := &trackedConn{Conn: c, t: t, host: h}
	if dc, ok := ctx.Value(dialCountedKey{}).(*dialCounted); ok {
		if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
			dc.local = la.AddrPort()
		}
	}
	if alpn == nil {
		return tc, nil
	}
	// TLS over the counted connection: its close is counted, and net/http
	// gets the *tls.Conn whose negotiated protocol picks h2.
	sc, principals, err := t.handshake(ctx, tc, addr, alpn)
	if err != nil {
		// handshake closed tc, which took it out of upstream_cx_active.
		t.stats.CxConnectFail.Add(1)
		if h != nil {
			h.CxConnectFail.Add(1)
		}
		return nil, err
	}
	if dc, ok := ctx.Value(dialCountedKey{}).(*dialCounted); ok {
		dc.h2.Store(sc.ConnectionState().NegotiatedProtocol == "h2")
		dc.principals = principals
	}
	return sc, nil
}

// dialH1 opens a connection of an HTTP/1.1 pool (h1conn.go); with TLS it
// offers the cluster's ALPN protocols other than h2.
func (t *Transport) dialH1(ctx context.Context, addr string) (clientConn, error) {
	var alpn []string
	if t.Options.TLS.Enabled {
		alpn = t.alpn(false)
	}
	c, err := t.dialCounted(ctx, "tcp", addr, alpn)
	if err != nil {
		return nil, err
	}
	return newH1Conn(c, t.Options.MaxRequestsPerConnection == 1), nil
}

// SetHosts tells the pool which host record each address belongs to, for
// per-host connection counts.
func (t *Transport) SetHosts(hosts []*Host) {
	m := make(map[string]*Host, len(hosts))
	for _, h := range hosts {
		m[h.Address] = h
	}
	t.hosts.Store(&m)
}

func (t *Transport) hostFor(addr string) *Host {
	m := t.hosts.Load()
	if m == nil {
		return nil
	}
	if h, ok := (*m)[addr]; ok {
		return h
	}
	if path, ok := pipePath(addr); ok { // net/http adds a port to a pipe host
		return (*m)[PipeAddress(path)]
	}
	return nil
}

// RoundTrip sends req on a pooled connection to req.URL.Host, outside any
// cluster's admission (a cluster's requests go through Admit): the stream
// counts in upstream_rq_active until the response body is read to its end
// or closed. downstreamH2 says the request came in over HTTP/2 (for
// use_downstream_protocol).
func (t *Transport) RoundTrip(req *http.Request, downstreamH2 bool) (*http.Response, error) {
	pc, err := t.acquire(req.Context(), req.URL.Host, downstreamH2)
	if err != nil {
		return nil, err
	}
	if t.Options.TLS.Enabled {
		req.URL.Scheme = "https"
	}
	resp, err := pc.cc.RoundTrip(req)
	if err != nil {
		t.stats.RqActive.Add(-1)
		pc.hp.release(pc, pc.h2) // a failed HTTP/1.1 exchange leaves its connection unusable
		return nil, err
	}
	pc.answered()
	resp.Body = &streamBody{ReadCloser: resp.Body, pc: pc}
	return resp, nil
}

// streamBody ends its stream on the pool when read to its end or closed.
type streamBody struct {
	io.ReadCloser
	pc   *poolConn
	once sync.Once
}

func (b *streamBody) end() {
	b.once.Do(func() {
		b.pc.hp.t.stats.RqActive.Add(-1)
		b.pc.hp.release(b.pc, true)
	})
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

// Close closes the pool's idle connections; the others drain, closing
// when their last request ends.
func (t *Transport) Close() {
	t.closeOnce.Do(func() { close(t.closed) })
	t.eachPool((*hostPool).close)
}

type trackedConn struct {
	net.Conn
	t    *Transport
	host *Host
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.stats.CxActive.Add(-1)
		if c.host != nil {
			c.host.CxActive.Add(-1)
		}
	})
	return c.Conn.Close()
}
