// Package proxy is `sluice proxy`: it announces itself to the control
// plane, compiles what it receives into a runtime, swaps it in atomically
// and serves traffic and an admin endpoint.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// Options configure a proxy.
type Options struct {
	Identity     model.Proxy
	XDSAddress   string
	AdminAddress string
	// Hosts overrides name resolution for upstream connections (from
	// --hosts-file); nil uses the system resolver alone.
	Hosts *upstream.Hosts
	// TrustDomain is the mesh's SPIFFE trust domain for the workload
	// identity (MeshConfig.trustDomain; default cluster.local).
	TrustDomain string
	Logger      *slog.Logger
}

// Proxy is one running proxy.
type Proxy struct {
	opts  Options
	log   *slog.Logger
	rt    atomic.Pointer[dataplane.Runtime]
	stats *dataplane.StatsStore
	// http is what every listener's request path shares (route-level
	// counters, response flags, the mirror cap).
	http *httpproxy.Shared

	// applyMu serialises updates; listeners is only touched under it.
	applyMu   sync.Mutex
	listeners map[string]*activeListener
	ctx       context.Context
	identity  *identity.Workload
	updates   atomic.Uint64
	rejects   atomic.Uint64
	lastErr   atomic.Pointer[string]
}

type activeListener struct {
	address string
	// kind is what serves it: "http", "https" or "tcp"; a change of kind
	// reopens the listener.
	kind string
	srv  listenerServer
	lis  net.Listener
}

// listenerServer is an HTTP server or a TCP proxy serving one listener.
type listenerServer interface {
	Shutdown(ctx context.Context)
	Close()
}

// httpServer adapts http.Server to listenerServer.
type httpServer struct{ *http.Server }

func (s httpServer) Shutdown(ctx context.Context) { s.Server.Shutdown(ctx) }
func (s httpServer) Close()                       { s.Server.Close() }

func listenerKind(l *dataplane.Listener) string {
	switch {
	case l.TCP:
		return "tcp"
	case l.TLS:
		return "https"
	}
	return "http"
}

// New prepares a proxy; Run starts it.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Proxy{opts: opts, log: opts.Logger, stats: dataplane.NewStatsStore(), http: httpproxy.NewShared(), listeners: map[string]*activeListener{}}
	p.rt.Store(&dataplane.Runtime{Listeners: map[string]*dataplane.Listener{}})
	return p
}

// Runtime returns the runtime in force.
func (p *Proxy) Runtime() *dataplane.Runtime { return p.rt.Load() }

// Run serves until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	p.ctx = ctx
	adminLis, err := net.Listen("tcp", p.opts.AdminAddress)
	if err != nil {
		return fmt.Errorf("proxy: admin listener: %w", err)
	}
	admin := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go admin.Serve(adminLis)
	p.log.Info("proxy starting", "id", p.opts.Identity.NodeID(), "xds", p.opts.XDSAddress, "admin", adminLis.Addr().String())
	// The workload certificate comes from the control plane's CA, as
	// istio-agent gets it for Envoy; config needing it waits for it.
	wl, err := identity.New(identity.Options{CAAddress: p.opts.XDSAddress, TrustDomain: p.opts.TrustDomain,
		Namespace: p.opts.Identity.Namespace, ServiceAccount: p.opts.Identity.ServiceAccount, Logger: p.log})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.identity = wl
	go wl.Run(ctx)
	client := xdsclient.New(xdsclient.Options{
		Address: p.opts.XDSAddress,
		Node:    p.opts.Identity.Node(),
		Apply:   p.apply,
		Logger:  p.log,
	})
	err = client.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	admin.Shutdown(shutdown)
	p.applyMu.Lock()
	for name, al := range p.listeners {
		al.srv.Shutdown(shutdown)
		delete(p.listeners, name)
	}
	p.applyMu.Unlock()
	return err
}

// apply compiles a candidate config, opens the listeners it adds, swaps it
// in, and closes the listeners it drops. Any failure leaves the old runtime
// in force and is returned for the NACK.
func (p *Proxy) apply(res xdsclient.Resources) (xdsclient.Dependencies, error) {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	prev := p.rt.Load()
	copts := dataplane.CompileOptions{Resources: res, Previous: prev, Stats: p.stats, Hosts: p.opts.Hosts}
	if p.identity != nil {
		copts.Identity = p.identity
	}
	next, deps, err := dataplane.Compile(copts)
	if err != nil {
		p.rejects.Add(1)
		msg := err.Error()
		p.lastErr.Store(&msg)
		return deps, err
	}
	opened, err := p.openListeners(next)
	if err != nil {
		for _, name := range opened {
			p.listeners[name].srv.Close()
			delete(p.listeners, name)
		}
		p.rejects.Add(1)
		msg := err.Error()
		p.lastErr.Store(&msg)
		return deps, err
	}
	p.rt.Store(next)
	p.closeRemovedListeners(next)
	p.closeRemovedPools(prev, next)
	p.updates.Add(1)
	p.log.Debug("config applied", "listeners", len(next.Listeners), "clusters", len(next.Clusters), "warming", next.Warming)
	return deps, nil
}

// openListeners binds every listener of rt not yet open (or whose address
// changed) and returns the names it opened.
func (p *Proxy) openListeners(rt *dataplane.Runtime) ([]string, error) {
	var opened []string
	for _, name := range rt.ListenerNames() {
		l := rt.Listeners[name]
		if l.Internal {
			continue // served from inside the proxy (dataplane/internal.go)
		}
		kind := listenerKind(l)
		if al, ok := p.listeners[name]; ok && al.address == l.Address && al.kind == kind {
			continue
		} else if ok {
			al.srv.Close()
			delete(p.listeners, name)
		}
		lis, err := net.Listen("tcp", l.Address)
		if err != nil {
			return opened, fmt.Errorf("listener %q: %w", name, err)
		}
		var srv listenerServer
		var serve func() error
		if kind == "tcp" {
			ts := tcpproxy.New(tcpproxy.Options{Listener: name, Runtime: &p.rt, Logger: p.log})
			srv, serve = ts, func() error { return ts.Serve(lis) }
		} else {
			protocols := new(http.Protocols)
			protocols.SetHTTP1(true)
			protocols.SetUnencryptedHTTP2(true)
			hs := &http.Server{
				Handler:           httpproxy.New(httpproxy.Options{Listener: name, Runtime: &p.rt, Shared: p.http}),
				Protocols:         protocols,
				IdleTimeout:       time.Hour,
				ReadHeaderTimeout: time.Minute,
				ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
			}
			if kind == "https" {
				lis = tls.NewListener(lis, p.serverTLS(name))
			}
			srv, serve = httpServer{hs}, func() error { return hs.Serve(lis) }
		}
		p.listeners[name] = &activeListener{address: l.Address, kind: kind, srv: srv, lis: lis}
		opened = append(opened, name)
		go func() {
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				p.log.Error("listener stopped", "listener", name, "err", err)
			}
		}()
		p.log.Info("listener open", "listener", name, "address", lis.Addr().String())
	}
	return opened, nil
}

func (p *Proxy) closeRemovedListeners(rt *dataplane.Runtime) {
	for name, al := range p.listeners {
		if _, ok := rt.Listeners[name]; ok {
			continue
		}
		delete(p.listeners, name)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			al.srv.Shutdown(ctx)
		}()
		p.log.Info("listener closed", "listener", name)
	}
}

// closeRemovedPools drops idle connections of pools no cluster uses now.
func (p *Proxy) closeRemovedPools(prev, next *dataplane.Runtime) {
	for name, c := range prev.Clusters {
		if nc, ok := next.Clusters[name]; ok && nc.Transport == c.Transport {
			continue
		}
		c.Transport.Close()
	}
}

// serverTLS is the TLS config of a listener: it picks the filter chain by
// the client's SNI from the runtime in force at handshake time, so
// certificate updates apply to new connections without reopening.
func (p *Proxy) serverTLS(listenerName string) *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			l := p.rt.Load().Listeners[listenerName]
			if l == nil {
				return nil, fmt.Errorf("listener %s is gone", listenerName)
			}
			c := l.ChainFor(strings.TrimSuffix(hello.ServerName, "."))
			if c == nil || c.TLS == nil {
				return nil, fmt.Errorf("listener %s: no filter chain for server name %q", listenerName, hello.ServerName)
			}
			return c.TLS.ConfigFor(hello), nil
		},
	}
}
