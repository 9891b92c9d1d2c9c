package h2server_test

// The "h2server" kind: h2server.Server serving each connection a loopback
// listener accepts (over TLS: after the handshake, with its state).

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/h2server"
)

func init() {
	kinds = append(kinds, "h2server")
	starters["h2server"] = startH2Server
}

func startH2Server(t testing.TB, h http.Handler, cfg config) *testServer {
	lis := listen(t)
	srv := &h2server.Server{
		Handler:              h,
		IdleTimeout:          cfg.IdleTimeout,
		ReadHeaderTimeout:    cfg.ReadHeaderTimeout,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		Logger:               slog.New(slog.DiscardHandler),
	}
	var tlsCfg *tls.Config
	if cfg.TLS {
		tlsCfg = serverTLSConfig()
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go serveH2(srv, c, tlsCfg)
		}
	}()
	ts := &testServer{
		Addr: lis.Addr().String(),
		// Shutdown drains before the listener closes, so a connection
		// accepted meanwhile meets a draining server.
		Shutdown: func(ctx context.Context) { srv.Shutdown(ctx); lis.Close() },
		Close:    func() { lis.Close(); srv.Close() },
	}
	t.Cleanup(ts.Close)
	return ts
}

func serveH2(srv *h2server.Server, c net.Conn, tlsCfg *tls.Config) {
	if tlsCfg == nil {
		srv.ServeConn(c, h2server.Options{})
		return
	}
	tc := tls.Server(c, tlsCfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != "h2" {
		c.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	srv.ServeConn(tc, h2server.Options{TLS: &st})
}

// h2server guesses no Content-Type (net/http sniffs one for a body
// without it): the one deliberate difference, so only for h2server.
func TestNoContentTypeGuessed(t *testing.T) {
	ts := startServer(t, "h2server", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hello</body></html>")
	}), config{})
	rc := dialHandshake(t, ts.Addr)
	rc.writeHeaders(1, true, get("/"))
	if o := rc.wait(1); o != "status 200" {
		t.Fatalf("outcome %q; frames:\n  %s", o, rc.dump())
	}
	if ct, ok := rc.streams[1].header["Content-Type"]; ok {
		t.Errorf("content-type %q for a handler that set none", ct)
	}
	if got := rc.body(1); got != "<html><body>hello</body></html>" {
		t.Errorf("body %q", got)
	}
}
