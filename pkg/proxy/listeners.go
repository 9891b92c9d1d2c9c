package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/downstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
)

// Listener lifecycle. An update never takes a listener down unless it is
// applied: every socket it needs is bound (or reused) before the runtime
// is swapped, a failure closes only what the update opened, and the
// servers it replaces or removes drain gracefully after the swap. A
// listener whose address is unchanged keeps its socket and its server,
// whatever its chains become: each connection is served by the chain it
// matches in the runtime in force when it arrives.

// drainTimeout bounds how long a replaced or removed listener's
// connections may take to finish.
const drainTimeout = 5 * time.Second

// socket is one bound listening socket. One goroutine accepts from it and
// hands each connection to the server attached last.
type socket struct {
	raw  net.Listener
	mu   sync.Mutex
	cur  *socketView
	done chan struct{}
}

func bindSocket(address string) (*socket, error) {
	raw, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	return &socket{raw: raw, done: make(chan struct{})}, nil
}

// attach makes a view of the socket for one server; the socket delivers to
// it once it is made current.
func (s *socket) attach() *socketView {
	return &socketView{s: s, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// makeCurrent routes the socket's new connections to v, starting the accept
// loop on first use.
func (s *socket) makeCurrent(v *socketView) {
	s.mu.Lock()
	first := s.cur == nil
	s.cur = v
	s.mu.Unlock()
	if first {
		go s.acceptLoop()
	}
}

func (s *socket) current() *socketView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *socket) acceptLoop() {
	defer close(s.done)
	for {
		c, err := s.raw.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return
		}
		s.deliver(c)
	}
}

// deliver hands c to the current view; if that view closes meanwhile (it
// was replaced), to its successor.
func (s *socket) deliver(c net.Conn) {
	for {
		v := s.current()
		select {
		case v.conns <- c:
			return
		case <-v.closed:
			if s.current() == v {
				c.Close() // the socket itself is going away
				return
			}
		}
	}
}

// close closes the socket; views see net.ErrClosed once closed themselves.
func (s *socket) close() { s.raw.Close() }

// socketView is the net.Listener one server serves: the socket's
// connections while it is current. Closing it does not close the socket.
type socketView struct {
	s      *socket
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	// addr is the address of a view without a socket (an unbound
	// listener's, which never accepts).
	addr net.Addr
}

func (v *socketView) Accept() (net.Conn, error) {
	select {
	case c := <-v.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	}
}

func (v *socketView) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *socketView) Addr() net.Addr {
	if v.s == nil {
		return v.addr
	}
	return v.s.raw.Addr()
}

// unboundAddr is the address of a bind_to_port false listener.
func unboundAddr(address string) net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", address)
	return a
}

// listenerUpdate is what applying a runtime does to the listeners:
// prepared are the servers to start (new, moved or changed kind), retired
// the ones to drain after the swap, and bound the sockets this update
// opened (closed again if it fails).
type listenerUpdate struct {
	prepared []*activeListener
	retired  []*activeListener
	bound    []*socket
}

// prepareListeners binds or reuses a socket and builds a server for every
// listener of rt that is new or changed, without serving yet. An error
// (e.g. an address already in use) leaves every running listener as it
// was.
func (p *Proxy) prepareListeners(rt *dataplane.Runtime) (*listenerUpdate, error) {
	up := &listenerUpdate{}
	for _, name := range rt.ListenerNames() {
		l := rt.Listeners[name]
		if l.Internal {
			continue // served from inside the proxy (dataplane/internal.go)
		}
		old, ok := p.listeners[name]
		if ok && old.address == l.Address && old.unbound == l.Unbound {
			// The server picks each connection's chain from the runtime
			// in force: it serves the new chains, whatever they are.
			continue
		}
		var sock *socket
		if !l.Unbound {
			var err error
			if sock, err = bindSocket(l.Address); err != nil {
				p.abandon(up)
				return nil, fmt.Errorf("listener %q: %w", name, err)
			}
			up.bound = append(up.bound, sock)
		}
		al := p.newServer(name, l.Address, sock)
		up.prepared = append(up.prepared, al)
		if ok {
			up.retired = append(up.retired, old)
		}
	}
	for name, old := range p.listeners {
		if l, ok := rt.Listeners[name]; !ok || l.Internal {
			up.retired = append(up.retired, old)
		}
	}
	return up, nil
}

// abandon undoes a prepared update that will not be applied.
func (p *Proxy) abandon(up *listenerUpdate) {
	for _, s := range up.bound {
		s.close()
	}
}

// commitListeners starts the prepared servers and drains the retired ones;
// call it after the runtime swap.
func (p *Proxy) commitListeners(up *listenerUpdate) {
	retiredSockets := map[*socket]bool{}
	for _, al := range up.retired {
		delete(p.listeners, al.name)
		if al.sock != nil {
			retiredSockets[al.sock] = true
		}
	}
	for _, al := range up.prepared {
		p.listeners[al.name] = al
		go func() {
			if err := al.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				p.log.Error("listener stopped", "listener", al.name, "err", err)
			}
		}()
		if al.sock == nil {
			p.log.Info("listener ready, not bound (bind_to_port false)", "listener", al.name, "address", al.address)
			continue
		}
		delete(retiredSockets, al.sock) // taken over by the new server
		al.sock.makeCurrent(al.view)
		p.log.Info("listener open", "listener", al.name, "address", al.sock.raw.Addr().String())
	}
	p.publishServers()
	for _, al := range up.retired {
		if retiredSockets[al.sock] {
			al.sock.close() // no new connections; accepted ones finish below
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			al.view.Close()
			al.srv.Shutdown(ctx)
		}()
		p.log.Info("listener draining", "listener", al.name, "address", al.address)
	}
}

// publishServers makes the listeners' servers findable by name for the
// hand-off of captured connections (downstream.Options.Servers); call it
// under applyMu after p.listeners changed.
func (p *Proxy) publishServers() {
	m := make(map[string]*downstream.Server, len(p.listeners))
	for name, al := range p.listeners {
		m[name] = al.ds
	}
	p.servers.Store(&m)
}

// server is the running server of a listener, by name (nil: none).
func (p *Proxy) server(name string) *downstream.Server {
	if m := p.servers.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// newServer builds the server for one listener on a view of sock: every
// connection is served by the filter chain it matches, HTTP or TCP,
// plaintext or TLS (pkg/proxy/downstream). A nil sock is a bind_to_port
// false listener: its server only gets connections handed to it.
func (p *Proxy) newServer(name, address string, sock *socket) *activeListener {
	al := &activeListener{name: name, address: address, sock: sock}
	if sock != nil {
		al.view = sock.attach()
	} else {
		al.unbound = true
		al.view = &socketView{s: nil, conns: make(chan net.Conn), closed: make(chan struct{}), addr: unboundAddr(address)}
	}
	srv := downstream.New(downstream.Options{
		Listener: name, Runtime: &p.rt, Logger: p.log, Counters: p.connCounters(name), Scope: p.http.Stats, Metrics: p.http.Metrics,
		HTTP:    httpproxy.New(httpproxy.Options{Listener: name, Runtime: &p.rt, Shared: p.http}),
		Servers: p.server,
	})
	al.srv, al.ds, al.serve = srv, srv, func() error { return srv.Serve(al.view) }
	return al
}

// shutdownListeners drains every listener (the proxy is stopping).
func (p *Proxy) shutdownListeners(ctx context.Context) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	for name, al := range p.listeners {
		if al.sock != nil {
			al.sock.close()
		}
		al.view.Close()
		al.srv.Shutdown(ctx)
		delete(p.listeners, name)
	}
}
