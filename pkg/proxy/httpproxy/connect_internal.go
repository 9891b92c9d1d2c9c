package httpproxy

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// A CONNECT tunnel to an HTTP service port. Captured TCP on an HTTP port
// is parsed as HTTP by the sidecar and routed by the HTTP route table
// (Istio's outbound HTTP listeners), so a tunnel to one is too: the route
// sends it to a cluster whose endpoint is an internal listener
// (dataplane/internal.go), and the tunnel's bytes are served as HTTP/1.1
// by that listener's connection manager, with its route table. In Envoy
// the same config makes the router open a connection to the internal
// listener; here the proxy hands the tunnel to it directly.

// connectInternal opens the tunnel and serves it on internal listener ln.
func (h *Handler) connectInternal(w http.ResponseWriter, r *http.Request, rt *dataplane.Runtime, ln string, rte *router.Route, info *RequestInfo) {
	l := rt.Listeners[ln]
	if l == nil || !l.Internal {
		w.Header().Set("Connection", "close")
		h.localReply(w, info, http.StatusServiceUnavailable, FlagNC, "CONNECT "+r.Host+": internal listener "+ln+" of cluster "+info.Cluster+" not found")
		return
	}
	tunnel, ok := h.openTunnel(w, rte, info)
	if !ok {
		return
	}
	h.serveInternal(tunnel, ln)
}

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
