// Package h1server is the proxy's HTTP/1.1 server connection: it reads a
// connection's requests one after another and hands each to an
// http.Handler, in place of net/http's server on the listeners' hot path.
//
// Why: net/http's server starts a goroutine per request (its "background
// read", so a client going away cancels the request's context) and wakes
// it when the handler returns; at full load that and the switches around
// it were the largest part of the sidecar's CPU that was not system calls
// (issue #12's profile). Here the request is read, served and answered on
// the connection's one goroutine, and the background read starts only for
// a request still in its handler after Server.WatchAfter (5 ms by
// default): a client that goes away during a slow request is noticed as
// before, a fast request costs nothing for it.
//
// What the handlers rely on is kept from net/http: the request is parsed
// by http.ReadRequest and checked as net/http's server checks it (Host,
// header names and values, HTTP/1.x only), Expect: 100-continue, the
// Flush and Hijack of http.ResponseController, trailers (declared, or
// under http.TrailerPrefix), chunked or close-delimited bodies of unknown
// length, a short body's Content-Length computed, HEAD, 1xx, keep-alive
// and Connection: close, an unread request body drained (up to 256 KiB)
// before the next request, panics recovered (http.ErrAbortHandler
// silently), idle and header timeouts, and a graceful Shutdown that closes
// idle connections and ends active ones after their response. Where Envoy
// decides otherwise, sluice follows Envoy: request heads are bounded at
// Envoy's default max_request_headers_kb, 60 KiB (431 beyond), and no
// Content-Type is guessed for a response that has none.
//
// HTTP/2 (h2c with prior knowledge, h2 by ALPN) is pkg/proxy/h2server's:
// ServeConn hands a connection that opens with the HTTP/2 preface to
// Options.H2C.
package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

const (
	// DefaultMaxHeaderBytes is Envoy's default max_request_headers_kb.
	DefaultMaxHeaderBytes = serverconn.DefaultMaxHeaderBytes
	// DefaultWatchAfter is how long a request may be in its handler
	// before a background read watches its client.
	DefaultWatchAfter = 5 * time.Millisecond
	// maxPostHandlerReadBytes is how much of a request body the handler
	// left unread is drained to keep the connection (net/http's figure).
	maxPostHandlerReadBytes = 256 << 10
	// rstAvoidanceDelay: a connection closed with request bytes unread
	// is half-closed and held this long, so the client reads the response
	// before the kernel resets the connection (net/http's figure).
	rstAvoidanceDelay = 500 * time.Millisecond
	readBufferSize    = 4 << 10
	writeBufferSize   = 4 << 10
)

// Server serves HTTP/1.1 connections with one handler.
type Server struct {
	Handler http.Handler
	// IdleTimeout closes a connection idle between requests that long
	// (0: never). ReadHeaderTimeout bounds reading a request head once
	// its first byte came (0: unbounded).
	IdleTimeout, ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request head (0: DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// WatchAfter is how long a request is served before its client is
	// watched for going away (0: DefaultWatchAfter).
	WatchAfter time.Duration
	Logger     *slog.Logger
	// rstDelay replaces rstAvoidanceDelay (tests).
	rstDelay time.Duration

	conns serverconn.Conns[*conn]
}

// Options are what one connection is served with.
type Options struct {
	// Context is the requests' parent context (it carries what the
	// handler knows of the connection).
	Context context.Context
	// TLS is the connection's TLS state (nil: plaintext).
	TLS *tls.ConnectionState
	// H2C takes a connection that opens with the HTTP/2 client preface,
	// the bytes already read put back (nil: served as HTTP/1.x, which
	// fails).
	H2C func(net.Conn)
}

// ServeConn serves c until it closes, is hijacked, or is handed to
// Options.H2C. It closes c unless hijacked or handed over.
func (s *Server) ServeConn(c net.Conn, opts Options) {
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	cn := &conn{srv: s, rwc: c, opts: opts}
	cn.remote = c.RemoteAddr().String()
	cn.ctx = context.WithValue(opts.Context, http.LocalAddrContextKey, c.LocalAddr())
	cn.ctxEnds = cn.ctx.Done() != nil
	cn.cr = newConnReader(c, cn.clientLost)
	cn.br = bufio.NewReaderSize(cn.cr, readBufferSize)
	cn.bw = bufio.NewWriterSize(checkWriter{cn}, writeBufferSize)
	if !s.conns.Add(cn) {
		c.Close()
		return
	}
	defer s.conns.Remove(cn)
	cn.serve()
}

// Shutdown ends every connection once it is idle, as net/http's Shutdown
// does: idle ones now, busy ones after their response (which says
// Connection: close). It returns when none is left or ctx ends (then it
// closes what is left).
func (s *Server) Shutdown(ctx context.Context) {
	s.conns.Drain()
	if !serverconn.Await(ctx, s.closeIdle) {
		s.Close()
	}
}

// closeIdle closes the idle connections and says how many are left.
func (s *Server) closeIdle() int {
	return s.conns.Count(func(cn *conn) bool {
		if cn.state.Load() == stateIdle && cn.state.CompareAndSwap(stateIdle, stateClosed) {
			cn.rwc.Close()
			return false
		}
		return true
	})
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.conns.Drain()
	s.conns.Count(func(cn *conn) bool {
		if cn.state.Load() != stateHijacked {
			cn.rwc.Close()
		}
		return true
	})
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) watchAfter() time.Duration {
	if s.WatchAfter > 0 {
		return s.WatchAfter
	}
	return DefaultWatchAfter
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
