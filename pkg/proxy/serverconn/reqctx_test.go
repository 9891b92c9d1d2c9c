package serverconn

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newRequestContext() *RequestContext {
	return &RequestContext{Context: context.WithValue(context.Background(), ctxKey{}, "conn")}
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
	c.Cancel()
	c.Cancel() // a second cancel does nothing
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
	early.Cancel()
	select {
	case <-d:
	default:
		t.Fatal("Done not closed by cancel")
	}
	late := newRequestContext()
	late.Cancel()
	select {
	case <-late.Done():
	default:
		t.Fatal("Done made after cancel is not closed")
	}
	for _, c := range []*RequestContext{early, late} {
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
	c.Cancel()
	select {
	case <-timed.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child not ended with its parent")
	}
	if !errors.Is(timed.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("children's Err: %v, %v", timed.Err(), child.Err())
	}
}
