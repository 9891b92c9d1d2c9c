// Package h2server is the proxy's HTTP/2 server connection (h2 by ALPN,
// h2c with prior knowledge): it reads a connection's frames on one
// goroutine, runs each stream's handler on a goroutine of its own, and
// writes what the handlers send through one buffered writer under a
// mutex, in place of net/http's HTTP/2 server on the listeners' hot path.
//
// Why: net/http's HTTP/2 server hands every frame a handler writes to its
// serve goroutine and back (HEADERS and DATA each wait for it), and
// flushes whenever its queue runs empty, so a small response costs two
// write system calls and four goroutine switches. Issue #12's profile of
// the h2c rows put the downstream writes at twice the upstream ones.
// Here a handler that returns with its whole response buffered writes
// HEADERS and DATA (and trailers) together with one flush.
//
// The protocol is RFC 9113, with golang.org/x/net/http2's Framer and
// hpack for the wire: SETTINGS (ours, with a larger initial window;
// the client's initial window, frame size and header table size
// applied), PING, WINDOW_UPDATE and flow control both ways, RST_STREAM,
// GOAWAY (graceful Shutdown, and connection errors), request trailers,
// response trailers (declared, or under http.TrailerPrefix), 1xx,
// Flush for streaming and full-duplex bodies, CONTINUATION through the
// Framer's header-block reassembly, and a bound on the header list (431
// past it, as net/http's server). Requests are checked as net/http's
// HTTP/2 server checks them (pseudo-headers, connection-specific fields,
// TE, Content-Length against the DATA received) and built as it builds
// them (Cookie fields joined, declared Trailer keys, CONNECT's
// authority-only URL). Rapid reset is bounded as net/http bounds it:
// handlers still running count against the stream limit, streams past
// it wait, and a client that piles up more than four times the limit
// gets GOAWAY ENHANCE_YOUR_CALM. Where Envoy decides otherwise sluice
// follows Envoy, as h1server does: no Content-Type is guessed for a
// response that has none.
package h2server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

const (
	// DefaultMaxHeaderBytes bounds a request's decoded header list
	// (SETTINGS_MAX_HEADER_LIST_SIZE): Envoy's max_request_headers_kb.
	DefaultMaxHeaderBytes = serverconn.DefaultMaxHeaderBytes
	// DefaultMaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS
	// (net/http's default).
	DefaultMaxConcurrentStreams = 250
	// streamWindow and connWindow are the receive windows advertised
	// (net/http's server defaults: 1 MiB each). A request body is
	// buffered up to its stream's window until the handler reads it;
	// the connection's window bounds what all its streams hold.
	streamWindow = 1 << 20
	connWindow   = 1 << 20
	// handlerChunk is how much of a response is buffered before it is
	// sent (net/http's handlerChunkWriteSize).
	handlerChunk = 4 << 10
	// readBufferSize holds a small request's frames (larger payloads are
	// read past it); writeBufferSize a response's HEADERS and a full
	// handlerChunk of DATA, so a small response is one write.
	readBufferSize  = 4 << 10
	writeBufferSize = 8 << 10
	// bodyBufferSize is a request body buffer's first size (pooled).
	bodyBufferSize = 4 << 10
	// maxFrameSize is the largest DATA frame read (SETTINGS_MAX_FRAME_SIZE).
	maxFrameSize = 1 << 20
	// goAwayDelay is how long a connection is kept open after its last
	// GOAWAY, so the client reads it before the close (net/http's
	// goAwayTimeout).
	goAwayDelay = time.Second
	// prefaceTimeout bounds reading the client preface and first
	// SETTINGS when the server has no ReadHeaderTimeout.
	prefaceTimeout = 10 * time.Second
)

// Server serves HTTP/2 connections with one handler.
type Server struct {
	Handler http.Handler
	// IdleTimeout closes a connection without streams that long (0:
	// never). ReadHeaderTimeout bounds the client preface and its first
	// SETTINGS (0: 10 s).
	IdleTimeout, ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's header list (0:
	// DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// MaxConcurrentStreams is the streams a client may have open at once
	// (0: DefaultMaxConcurrentStreams).
	MaxConcurrentStreams uint32
	Logger               *slog.Logger

	conns serverconn.Conns[*conn]
}

// Options are what one connection is served with.
type Options struct {
	// Context is the requests' parent context (it carries what the
	// handler knows of the connection).
	Context context.Context
	// TLS is the connection's TLS state (nil: h2c), set as the requests'
	// TLS when their :scheme is https (as net/http's server).
	TLS *tls.ConnectionState
}

// ServeConn serves c until it closes, the client goes away, or the server
// shuts down. It reads the client preface itself, and closes c.
func (s *Server) ServeConn(c net.Conn, opts Options) {
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	cn := newConn(s, c, opts)
	if !s.conns.Add(cn) {
		c.Close()
		return
	}
	defer s.conns.Remove(cn)
	cn.serve()
}

// Shutdown sends every connection a GOAWAY and lets its streams finish:
// a connection closes once it has none. It returns when none is left or
// ctx ends (then it closes what is left).
func (s *Server) Shutdown(ctx context.Context) {
	s.conns.Drain()
	s.conns.Count(func(cn *conn) bool {
		go cn.shutdown() // it writes: not under the set's lock
		return true
	})
	left := func() int { return s.conns.Count(func(*conn) bool { return true }) }
	if !serverconn.Await(ctx, left) {
		s.Close()
	}
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.conns.Drain()
	s.conns.Count(func(cn *conn) bool {
		cn.rwc.Close()
		return true
	})
}

func (s *Server) maxHeaderBytes() uint32 {
	if s.MaxHeaderBytes > 0 {
		return uint32(s.MaxHeaderBytes)
	}
	return DefaultMaxHeaderBytes
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams > 0 {
		return s.MaxConcurrentStreams
	}
	return DefaultMaxConcurrentStreams
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
