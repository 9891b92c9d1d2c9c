package h1server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

func newRequestContext() *requestContext {
	return &requestContext{Context: context.WithValue(context.Background(), ctxKey{}, "conn")}
}

type ctxKey struct{}

// The request context keeps context.AfterFunc's contract: registered
// functions run once it ends, stopped ones do not, and stop says which.
func TestRequestContextAfterFunc(t *testing.T) {
	c := newRequestContext()
	ran := make(chan int, 4)
	stop1 := c.AfterFunc(func() { ran <- 1 })
	stop2 := c.AfterFunc(func() { ran <- 2 })
	stop3 := c.AfterFunc(func() { ran <- 3 })
	if !stop2() {
		t.Fatal("stop of a registered function: false")
	}
	if stop2() {
		t.Fatal("second stop of the same function: true")
	}
	if c.Err() != nil {
		t.Fatalf("Err before cancel: %v", c.Err())
	}
	c.cancel()
	c.cancel() // a second cancel does nothing
	got := map[int]bool{}
	for range 2 {
		select {
		case n := <-ran:
			got[n] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("functions run after cancel: %v, want 1 and 3", got)
		}
	}
	if !got[1] || !got[3] {
		t.Fatalf("functions run: %v, want 1 and 3", got)
	}
	select {
	case n := <-ran:
		t.Fatalf("function %d ran too", n)
	case <-time.After(50 * time.Millisecond):
	}
	if stop1() || stop3() {
		t.Fatal("stop after the function ran: true")
	}
	// Registered after the end: runs at once, and cannot be stopped.
	stop4 := c.AfterFunc(func() { ran <- 4 })
	if stop4() {
		t.Fatal("stop of a function registered after the end: true")
	}
	select {
	case n := <-ran:
		if n != 4 {
			t.Fatalf("ran %d, want 4", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("function registered after the end did not run")
	}
}

// Done is made on demand, closed by cancel (before or after it is made),
// and Err, Cause and Value read as for a context.WithCancel child.
func TestRequestContextDone(t *testing.T) {
	early := newRequestContext()
	d := early.Done()
	select {
	case <-d:
		t.Fatal("Done closed before cancel")
	default:
	}
	early.cancel()
	select {
	case <-d:
	default:
		t.Fatal("Done not closed by cancel")
	}
	late := newRequestContext()
	late.cancel()
	select {
	case <-late.Done():
	default:
		t.Fatal("Done made after cancel is not closed")
	}
	for _, c := range []*requestContext{early, late} {
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
			t.Fatalf("Err %v, Cause %v: want context.Canceled", c.Err(), context.Cause(c))
		}
		if v := c.Value(ctxKey{}); v != "conn" {
			t.Fatalf("Value: %v, want the connection's", v)
		}
	}
}

// Contexts made from it (a route timeout, a per-try timeout) end with it,
// through AfterFunc, and a child's own end leaves it running.
func TestRequestContextChildren(t *testing.T) {
	c := newRequestContext()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	child, cancelChild := context.WithCancel(c)
	cancelChild()
	if c.Err() != nil {
		t.Fatal("a child's cancel ended its parent")
	}
	if got := len(c.hooks); got != 1 {
		t.Fatalf("%d functions registered after one child ended, want 1 (the other child's)", got)
	}
	c.cancel()
	select {
	case <-timed.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child not ended with its parent")
	}
	if !errors.Is(timed.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("children's Err: %v, %v", timed.Err(), child.Err())
	}
}

// A connection whose context can end gives its requests contexts that end
// with it (context.WithCancel's); one that cannot, requestContexts. Both
// carry the connection's values.
func TestServeRequestContextKinds(t *testing.T) {
	connCtx, cancelConn := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "conn"))
	defer cancelConn()
	kinds := make(chan string, 2)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, own := r.Context().(*requestContext)
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
			t.Errorf("request %s: requestContext %q, want %q", tc.path, got, tc.want)
		}
	}
}
