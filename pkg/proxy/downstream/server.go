// Package downstream is a listener's connection side, as Envoy's
// connection handler and filter chain manager: for every accepted
// connection, the listener filters (the tls_inspector when the listener has
// or needs it, the http_inspector when it has it; inspect.go), the
// filter chain it matches (dataplane.Listener.Select; none: the
// connection is closed), the chain's TLS termination, the connection as
// filters see it (httpfilter.Conn, filled once) and the connection
// counters; then the chain serves it: its HTTP connection manager or
// its tcp_proxy. HTTP/1.x connections are served by pkg/proxy/h1server,
// HTTP/2 ones (h2 by ALPN, h2c with prior knowledge) by
// pkg/proxy/h2server.
package downstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/h1server"
	"github.com/sluice-mesh/sluice/pkg/proxy/h2server"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/origdst"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpproxy"
)

// handshakeTimeout bounds a downstream TLS handshake.
const handshakeTimeout = 10 * time.Second

// Counters are a listener's connection counters (/stats
// listener.<name>.*), kept across config pushes.
type Counters struct {
	// MTLS counts connections whose TLS handshake completed with a
	// verified client certificate (downstream_cx_mtls); Plaintext the
	// ones served without TLS (downstream_cx_plaintext); NoChainMatch the
	// ones no filter chain took, closed (no_filter_chain_match).
	MTLS, Plaintext, NoChainMatch atomic.Uint64
	// PreCxTimeout counts connections whose listener filters timed out
	// (downstream_pre_cx_timeout); HTTP10, HTTP11, HTTP2 and NotHTTP the
	// http_inspector's verdicts (http_inspector.http10_found,
	// http11_found, http2_found, http_not_found).
	PreCxTimeout, HTTP10, HTTP11, HTTP2, NotHTTP atomic.Uint64
	// HandedOff counts connections handed to the listener of their
	// original destination (use_original_dst).
	HandedOff atomic.Uint64
}

// Options configure a listener's server.
type Options struct {
	Listener string
	Runtime  *atomic.Pointer[dataplane.Runtime]
	// HTTP is the connection manager serving the HTTP chains' requests.
	HTTP     http.Handler
	Counters *Counters
	// Scope holds the proxy's filter counters and decisions (the TCP
	// chains' network filters count and record there).
	Scope  *httpfilter.Scope
	Logger *slog.Logger
	// Metrics are the proxy's standard metrics for TCP chains (nil: none).
	Metrics *istiometrics.Metrics
	// Servers finds the server of another listener by name, for the
	// hand-off of captured connections (use_original_dst; capture.go);
	// nil: connections are never handed off.
	Servers func(listener string) *Server
}

// Server serves the connections of one listener.
type Server struct {
	opts Options
	h1   *h1server.Server
	h2   *h2server.Server

	mu    sync.Mutex
	lis   net.Listener
	conns map[net.Conn]struct{}
	// closed is set, under mu, when Shutdown or Close begins: no
	// connection is added to wg after that.
	closed bool
	wg     sync.WaitGroup
}

// New makes the server of one listener.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Counters == nil {
		opts.Counters = &Counters{}
	}
	if opts.Scope == nil {
		opts.Scope = httpfilter.NewScope()
	}
	s := &Server{opts: opts, conns: map[net.Conn]struct{}{}}
	// Both HTTP versions are served by sluice's own server connections
	// (h1server's and h2server's package docs say why).
	s.h1 = &h1server.Server{Handler: opts.HTTP, IdleTimeout: time.Hour, ReadHeaderTimeout: time.Minute, Logger: opts.Logger}
	s.h2 = &h2server.Server{Handler: opts.HTTP, IdleTimeout: time.Hour, ReadHeaderTimeout: time.Minute, Logger: opts.Logger}
	return s
}

// Serve accepts connections on lis until it is closed.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	s.lis = lis
	s.mu.Unlock()
	for {
		conn, err := lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		if !s.track(conn, true) {
			conn.Close()
			return nil
		}
		go func() {
			defer s.wg.Done()
			defer s.track(conn, false)
			s.handle(conn, true)
		}()
	}
}

// HandOff serves a connection another listener accepted and handed to
// this one (its original destination is this listener's address): this
// listener's filters and chains serve it, and it is not handed on again.
// It reports false when the server is closing (the caller closes c).
func (s *Server) HandOff(c net.Conn) bool {
	if !s.track(c, true) {
		return false
	}
	go func() {
		defer s.wg.Done()
		defer s.track(c, false)
		s.handle(c, false)
	}()
	return true
}

// handle takes one connection through the original_dst filter (and the
// hand-off, when handOff is allowed), the tls_inspector, the chain choice
// and the chain's TLS, then serves it by its chain.
func (s *Server) handle(raw net.Conn, handOff bool) {
	start := time.Now()
	rt := s.opts.Runtime.Load()
	l := rt.Listeners[s.opts.Listener]
	if l == nil {
		raw.Close()
		return
	}
	if l.OriginalDst {
		raw = s.restore(raw, l)
		if handOff && l.HandOff && s.handOff(raw, rt, l) {
			return
		}
	}
	in := dataplane.MatchInput{Transport: dataplane.TransportRawBuffer}
	if ta, ok := raw.LocalAddr().(*net.TCPAddr); ok {
		in.DestinationPort = uint32(ta.Port)
		in.DestinationIP = ta.AddrPort().Addr().Unmap()
	}
	conn, ok := inspect(raw, l, &in, s.opts.Counters)
	if !ok {
		raw.Close()
		return
	}
	chain := l.Select(&in)
	if chain == nil {
		s.noChain(raw, l, &in, start)
		return
	}
	ic := &infoConn{Conn: conn}
	served := net.Conn(ic)
	var state *tls.ConnectionState
	var local *x509.Certificate
	if chain.TLS != nil {
		tc, st, lc, err := terminate(ic, chain.TLS)
		if err != nil {
			s.opts.Logger.Debug("downstream tls handshake failed", "listener", l.Name, "remote", raw.RemoteAddr().String(), "err", err)
			raw.Close()
			return
		}
		served, state, local = tc, st, lc
	}
	ci := httpproxy.NewConnInfo(raw, state, local)
	ci.Match, ci.Chain, ci.Listener = in, chain, l
	if rc, ok := raw.(*origdst.Conn); ok && rc.Redirected {
		// Not when the destination is the listener itself: passing
		// through to it would loop back here.
		ci.Conn.OriginalDst = true
	}
	if ci.Conn.ServerName == "" {
		// TLS passed through: the SNI the tls_inspector read (Envoy's
		// requestedServerName, connection.sni).
		ci.Conn.ServerName = in.ServerName
	}
	switch {
	case ci.MTLS():
		s.opts.Counters.MTLS.Add(1)
	case state == nil && in.Transport == dataplane.TransportRawBuffer:
		s.opts.Counters.Plaintext.Add(1)
	}
	if chain.TCP != nil {
		tcpproxy.Serve(served, tcpproxy.Connection{Chain: chain, Runtime: rt, Conn: &ci.Conn, Scope: s.opts.Scope,
			Logger: s.opts.Logger.With("listener", l.Name), Metrics: s.opts.Metrics, Inbound: l.Inbound})
		return
	}
	ci.PrepareXFCC()
	ctx := httpproxy.WithConn(context.Background(), ci)
	if state != nil && state.NegotiatedProtocol == "h2" {
		s.h2.ServeConn(served, h2server.Options{Context: ctx, TLS: state})
		return
	}
	opts := h1server.Options{Context: ctx, TLS: state}
	if state == nil {
		// h2c with prior knowledge, as Envoy's codec AUTO tells the
		// protocols apart by the preface.
		opts.H2C = func(c net.Conn) { s.h2.ServeConn(c, h2server.Options{Context: ctx}) }
	}
	s.h1.ServeConn(served, opts)
}

// noChain closes a connection no filter chain matches, as Envoy does
// (STRICT refuses plaintext here), counted and logged.
func (s *Server) noChain(raw net.Conn, l *dataplane.Listener, in *dataplane.MatchInput, start time.Time) {
	s.opts.Counters.NoChainMatch.Add(1)
	s.opts.Logger.Debug("no filter chain matches the connection", "listener", l.Name,
		"remote", raw.RemoteAddr().String(), "transport", in.Transport, "sni", in.ServerName, "alpn", in.ALPN)
	if len(l.AccessLog) > 0 {
		logNoChain(l, raw, in, start)
	}
	// Envoy's close leaves the client's unread bytes in the socket, so
	// the kernel resets the connection (curl: 56, "Connection reset by
	// peer", as Istio's STRICT pages show); the inspector read them, so
	// reset it the same way.
	if tc := origdst.TCP(raw); tc != nil {
		tc.SetLinger(0)
	}
	raw.Close()
}

// logNoChain writes the listener's access log for a connection no filter
// chain takes, as Envoy's ActiveStreamListenerBase::newConnection does:
// response flag NR, details filter_chain_not_found, the connection's
// addresses and the SNI the tls_inspector read.
func logNoChain(l *dataplane.Listener, c net.Conn, in *dataplane.MatchInput, start time.Time) {
	info := httpfilter.RequestInfo{Start: start, Flags: httpfilter.FlagNR, Details: "filter_chain_not_found"}
	conn := httpfilter.Conn{ServerName: in.ServerName}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		conn.RemoteAddr = a.AddrPort()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		conn.LocalAddr = a.AddrPort()
	}
	l.AccessLog.Log(&accesslog.Entry{Info: &info, Conn: &conn, End: time.Now()})
}

// terminate completes the chain's TLS handshake on c.
func terminate(c net.Conn, st *dataplane.ServerTLS) (*tls.Conn, *tls.ConnectionState, *x509.Certificate, error) {
	var hello *tls.ClientHelloInfo
	tc := tls.Server(c, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = h
		return st.ConfigFor(h), nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, nil, err
	}
	state := tc.ConnectionState()
	return tc, &state, st.LocalCertificate(hello), nil
}

// track adds c to the open connections (and wg), unless the server is
// closing, or removes it.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Shutdown stops accepting and lets open connections finish until ctx
// ends (HTTP ones are closed when idle, as net/http's Shutdown does),
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) {
	s.stop()
	httpDone := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { s.h2.Shutdown(ctx) })
		s.h1.Shutdown(ctx)
		wg.Wait()
		close(httpDone)
	}()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Close()
	}
	select {
	case <-httpDone:
	case <-ctx.Done():
		s.h2.Close()
		s.h1.Close()
	}
}

// Close stops accepting and closes every open connection.
func (s *Server) Close() {
	s.stop()
	s.h2.Close()
	s.h1.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	s.closed = true
	if s.lis != nil {
		s.lis.Close()
	}
	s.mu.Unlock()
}

// infoConn is the connection the chain serves, whatever the listener
// filters wrapped it in, with the half-close upgrade tunnels need.
type infoConn struct {
	net.Conn
}

// CloseWrite half-closes the connection (upgrade tunnels).
func (c *infoConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
