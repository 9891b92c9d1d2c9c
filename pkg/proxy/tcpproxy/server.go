// Package tcpproxy serves listeners whose filter chains proxy opaque TCP
// (Envoy's tcp_proxy): a chain is chosen by the TLS server name when the
// listener has several (TLS passthrough) or terminates TLS, then a cluster
// and a host, and bytes are copied both ways until either side closes or
// the connection is idle too long.
package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
)

// peekTimeout bounds how long a client may take to send its ClientHello.
const peekTimeout = 10 * time.Second

// Options configure a Server.
type Options struct {
	Listener string
	Runtime  *atomic.Pointer[dataplane.Runtime]
	Logger   *slog.Logger
	// Scope holds the proxy's filter counters and state (the network
	// filters' counters and decisions); nil makes one for this server.
	Scope *httpfilter.Scope
}

// Server proxies the connections of one listener.
type Server struct {
	opts  Options
	mu    sync.Mutex
	lis   net.Listener
	conns map[net.Conn]struct{}
	// closed is set, under mu, when Shutdown or Close begins: no
	// connection is added to wg after that, so wg.Wait never races a
	// wg.Add.
	closed bool
	wg     sync.WaitGroup
}

// New makes a server for one listener.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Scope == nil {
		opts.Scope = httpfilter.NewScope()
	}
	return &Server{opts: opts, conns: map[net.Conn]struct{}{}}
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
			s.handle(conn)
		}()
	}
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

// Shutdown stops accepting and waits for open connections until ctx ends,
// then closes them.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	if s.lis != nil {
		s.lis.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Close()
	}
}

// Close stops accepting and closes every open connection.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.lis != nil {
		s.lis.Close()
	}
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	rt := s.opts.Runtime.Load()
	l := rt.Listeners[s.opts.Listener]
	if l == nil {
		return
	}
	chain := l.Chains[0]
	var sni string // what tls_inspector reads: connection.sni
	if len(l.Chains) > 1 || len(chain.ServerNames) > 0 || chain.TLS != nil {
		var replay net.Conn
		var err error
		sni, replay, err = peekServerName(conn, peekTimeout)
		if err != nil {
			s.opts.Logger.Debug("tcp: no ClientHello", "listener", l.Name, "err", err)
		}
		conn = replay
		chain = l.ChainFor(sni)
		if chain == nil {
			s.opts.Logger.Debug("tcp: no filter chain for server name", "listener", l.Name, "sni", sni)
			return
		}
		if chain.TLS != nil {
			st := chain.TLS
			tc := tls.Server(conn, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				return st.ConfigFor(h), nil
			}})
			tc.SetDeadline(time.Now().Add(peekTimeout))
			if err := tc.Handshake(); err != nil {
				return
			}
			tc.SetDeadline(time.Time{})
			conn = tc
		}
	}
	if !s.allow(conn, chain, sni) {
		return
	}
	route := chain.TCP
	name := route.PickCluster()
	cl := rt.Clusters[name]
	if cl == nil {
		s.opts.Logger.Warn("tcp: cluster not found", "listener", l.Name, "cluster", name)
		return
	}
	// Raw TCP in local mode carries no original destination, so a
	// passthrough cluster has nothing to go to (Dial refuses it).
	up, err := tcpconn.Dial(context.Background(), cl, "")
	if err != nil {
		s.opts.Logger.Debug("tcp: upstream connect failed", "cluster", name, "err", err)
		return
	}
	up.Pipe(conn, route.IdleTimeout)
}

// allow runs the chain's network filters (envoy.filters.network.rbac)
// once on the accepted connection; false: it is to be closed.
func (s *Server) allow(conn net.Conn, chain *dataplane.FilterChain, sni string) bool {
	if len(chain.ConnFilters) == 0 {
		return true
	}
	c := rbac.ConnFromNet(conn)
	if c.ServerName == "" {
		c.ServerName = sni
	}
	for _, f := range chain.ConnFilters {
		if !f.Allow(&c, s.opts.Scope) {
			return false
		}
	}
	return true
}
