package httpproxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
)

// The proxy's internal listeners (Envoy's envoy.bootstrap.internal_listener;
// dataplane/internal.go): listeners with no socket, served from inside the
// proxy. The router filter hands them CONNECT tunnels to HTTP service ports
// (filters/router/connect.go), and each is served as one HTTP/1.1
// connection of the internal listener's connection manager.

// HasInternal reports whether ln is an internal listener of the runtime in
// force (httpfilter.InternalServer).
func (h *Handler) HasInternal(ln string) bool {
	l := h.opts.Runtime.Load().Listeners[ln]
	return l != nil && l.Internal
}

// ServeInternal serves conn as one HTTP/1.1 connection of internal listener
// ln until it closes (or is taken over by an upgrade, which then owns it).
func (h *Handler) ServeInternal(conn net.Conn, ln string) { h.serveInternal(conn, ln) }

// serveInternal serves conn as one HTTP/1.1 connection of listener ln
// until it closes (or is taken over by an upgrade, which then owns it).
func (h *Handler) serveInternal(conn net.Conn, ln string) {
	var once sync.Once
	done := make(chan struct{})
	srv := &http.Server{
		Handler:           New(Options{Listener: ln, Runtime: h.opts.Runtime, Shared: h.shared}),
		IdleTimeout:       time.Hour,
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ci := NewConnInfo(c, nil, nil)
			ci.Match.Transport = dataplane.TransportRawBuffer
			return WithConn(ctx, ci)
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				once.Do(func() { close(done) })
			}
		},
	}
	srv.Serve(&oneConnListener{conn: conn})
	<-done
}

// oneConnListener hands out one connection, then reports itself closed.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
}

var errListenerDone = errors.New("internal listener: connection handed out")

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil, errListenerDone
	}
	c := l.conn
	l.conn = nil
	return c, nil
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return internalAddr{} }

type internalAddr struct{}

func (internalAddr) Network() string { return "internal" }
func (internalAddr) String() string  { return "internal" }
