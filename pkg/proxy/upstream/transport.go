package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
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
	// MaxIdlePerHost bounds idle connections kept per host.
	MaxIdlePerHost int
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

// Transport is a cluster's connection pool: keep-alive HTTP/1.1
// connections, or multiplexed h2c connections, per host. Connections are
// counted in the cluster's stats and on the host they go to.
type Transport struct {
	Options TransportOptions
	// RT sends with the cluster's protocol; H2 is the h2c pool used for
	// HTTP/2 requests when the cluster uses the downstream protocol.
	RT *http.Transport
	H2 *http.Transport

	stats  *Stats
	hosts  atomic.Pointer[map[string]*Host]
	trace  bool
	dialer *net.Dialer
}

// NewTransport builds a pool for opts counting connections in stats (which
// may be nil).
func NewTransport(opts TransportOptions, stats *Stats) *Transport {
	if stats == nil {
		stats = &Stats{}
	}
	t := &Transport{Options: opts, stats: stats}
	t.trace = opts.MaxRequestsPerConnection > 1 || opts.MaxConnectionDuration > 0
	t.RT = t.newRT(opts.HTTP2 && !opts.UseDownstreamProtocol)
	if opts.UseDownstreamProtocol {
		t.H2 = t.newRT(true)
	}
	return t
}

func (t *Transport) newRT(h2 bool) *http.Transport {
	opts := t.Options
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	t.dialer = dialer
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
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	perHost := opts.MaxIdlePerHost
	if perHost <= 0 {
		perHost = 1024
	}
	rt := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := t.dial(ctx, network, addr)
			if err != nil {
				if h := t.hostFor(addr); h != nil {
					h.CxConnectFail.Add(1)
				}
				return nil, err
			}
			return t.track(c, addr), nil
		},
		MaxIdleConns:          0, // no global cap; per host below
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       idle,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		DisableKeepAlives:     opts.MaxRequestsPerConnection == 1,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 0,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	if h2 {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		rt.Protocols = p
	}
	return rt
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

// RoundTrip sends req with the pool for its protocol. downstreamH2 says
// the request came in over HTTP/2 (for use_downstream_protocol).
func (t *Transport) RoundTrip(req *http.Request, downstreamH2 bool) (*http.Response, error) {
	rt := t.RT
	if t.H2 != nil && downstreamH2 {
		rt = t.H2
	}
	if t.trace {
		req = t.withConnLimits(req)
	}
	return rt.RoundTrip(req)
}

// withConnLimits marks the request Close (HTTP/1.1: "Connection: close";
// HTTP/2: the connection takes no new streams) when the connection it gets
// has served its maximum number of requests or lived its maximum time.
// The trace callback runs on the RoundTrip goroutine before the request is
// written.
func (t *Transport) withConnLimits(req *http.Request) *http.Request {
	opts := t.Options
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		tc, ok := info.Conn.(*trackedConn)
		if !ok {
			return
		}
		n := tc.requests.Add(1)
		switch {
		case out.Close:
		case opts.MaxRequestsPerConnection > 0 && n >= uint64(opts.MaxRequestsPerConnection):
			out.Close = true
			t.stats.CxMaxRequests.Add(1)
		case opts.MaxConnectionDuration > 0 && time.Since(tc.opened) >= opts.MaxConnectionDuration:
			out.Close = true
			t.stats.CxMaxDuration.Add(1)
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	return out
}

// track wraps a new connection so it is counted while open.
func (t *Transport) track(c net.Conn, addr string) net.Conn {
	tc := &trackedConn{Conn: c, t: t, host: t.hostFor(addr), opened: time.Now()}
	t.stats.CxTotal.Add(1)
	t.stats.CxActive.Add(1)
	if tc.host != nil {
		tc.host.CxTotal.Add(1)
		tc.host.CxActive.Add(1)
	}
	return tc
}

// Close drops the pool's idle connections.
func (t *Transport) Close() {
	t.RT.CloseIdleConnections()
	if t.H2 != nil {
		t.H2.CloseIdleConnections()
	}
}

type trackedConn struct {
	net.Conn
	t        *Transport
	host     *Host
	opened   time.Time
	requests atomic.Uint64
	once     sync.Once
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
