// Package serverconn holds what sluice's HTTP server connections
// (pkg/proxy/h1server, pkg/proxy/h2server) share: a request context that
// lives inside the per-request state, and the Date header.
package serverconn

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// RequestContext is a request's context.Context when its connection's
// context can never end (Done is nil, as for every listener's connection).
// It lives inside the response, so a request's context costs no
// allocation where context.WithCancel costs two (and, under a cancellable
// parent, an entry in that parent's shared map of children).
//
// It ends when the request is finished, its client is lost or a write to
// the client fails, as net/http's per-request context does. Its Done
// channel is made only if asked for. It offers AfterFunc, the method of
// package context's afterFuncer interface: context.AfterFunc,
// context.WithCancel and the others use it to follow this context instead
// of starting a goroutine, and upstream's HTTP/1.1 connection calls it
// directly (one allocation, against context.AfterFunc's five).
type RequestContext struct {
	context.Context // the connection's, never done: Deadline and Value

	ended atomic.Bool
	mu    sync.Mutex
	done  chan struct{} // made by the first Done
	seq   uint64
	// hooks are the functions AfterFunc registered and not yet stopped;
	// the first two live in inline.
	hooks  []afterHook
	inline [2]afterHook
}

type afterHook struct {
	id uint64
	f  func()
}

func (c *RequestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.ended.Load() {
			close(c.done)
		}
	}
	return c.done
}

func (c *RequestContext) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return nil
}

func (c *RequestContext) String() string { return "serverconn.RequestContext" }

// AfterFunc arranges for f to run in its own goroutine once c ends (at
// once if it has); stop cancels that, reporting whether it stopped f
// from running. The contract is context.AfterFunc's.
func (c *RequestContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		go f()
		return stopNothing
	}
	if c.hooks == nil {
		c.hooks = c.inline[:0]
	}
	c.seq++
	id := c.seq
	c.hooks = append(c.hooks, afterHook{id: id, f: f})
	c.mu.Unlock()
	return func() bool { return c.stopHook(id) }
}

func stopNothing() bool { return false }

func (c *RequestContext) stopHook(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range c.hooks {
		if h.id == id {
			c.hooks = slices.Delete(c.hooks, i, i+1)
			return true
		}
	}
	return false
}

// Cancel ends c: Err reports context.Canceled, Done is closed and the
// registered functions start. Later calls do nothing.
func (c *RequestContext) Cancel() {
	c.mu.Lock()
	if c.ended.Swap(true) {
		c.mu.Unlock()
		return
	}
	if c.done != nil {
		close(c.done)
	}
	hooks := c.hooks
	c.hooks = nil
	c.mu.Unlock()
	for _, h := range hooks {
		go h.f()
	}
}
