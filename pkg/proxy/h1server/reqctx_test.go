package h1server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/serverconn"
)

type ctxKey struct{}

// A connection whose context can end gives its requests contexts that end
// with it (context.WithCancel's); one that cannot,
// serverconn.RequestContexts. Both carry the connection's values.
func TestServeRequestContextKinds(t *testing.T) {
	connCtx, cancelConn := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "conn"))
	defer cancelConn()
	kinds := make(chan string, 2)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, own := r.Context().(*serverconn.RequestContext)
		if r.Context().Value(ctxKey{}) != "conn" {
			t.Error("the request's context lost the connection's values")
		}
		if r.URL.Path == "/cancellable" {
			cancelConn()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
				t.Error("the connection's context ended and the request's did not")
			}
		}
		kinds <- fmt.Sprint(r.URL.Path, " ", own)
	})}
	for _, tc := range []struct {
		path string
		ctx  context.Context
		want string
	}{
		{"/plain", context.WithValue(context.Background(), ctxKey{}, "conn"), "/plain true"},
		{"/cancellable", connCtx, "/cancellable false"},
	} {
		addr := serve(t, srv, func(net.Conn) Options { return Options{Context: tc.ctx} })
		c := dial(t, addr, 5*time.Second)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", tc.path)
		if got := <-kinds; got != tc.want {
			t.Errorf("request %s: request context %q, want %q", tc.path, got, tc.want)
		}
	}
}
