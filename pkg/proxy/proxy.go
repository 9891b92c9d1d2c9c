// Package proxy is `sluice proxy`: it announces itself to the control
// plane, compiles what it receives into a runtime, swaps it in atomically
// and serves traffic and an admin endpoint.
package proxy

import (
	"context"
	"crypto/tls"
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
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
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
	// AuthzExplainHeader names the deciding RBAC policy in a response
	// header of denied requests (--authz-explain-header; off by default).
	AuthzExplainHeader bool
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
	// compiled and reused count, over every accepted update, the
	// listeners, routes and clusters built anew and taken unchanged.
	compiled, reused compileTotals
	lastErr          atomic.Pointer[string]
}

type activeListener struct {
	name    string
	address string
	// kind is what serves it: "http", "https" or "tcp"; a change of kind
	// puts a new server on the same socket.
	kind  string
	srv   listenerServer
	serve func() error
	sock  *socket
	view  *socketView
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
	rbac.Configure(p.http.Stats, rbac.Options{ExplainHeader: opts.AuthzExplainHeader, Logger: opts.Logger})
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
	p.shutdownListeners(shutdown)
	return err
}

// apply compiles a candidate config, binds the sockets of the listeners it
// adds or moves, swaps it in, then starts the new servers and drains the
// ones it replaced or dropped. Any failure leaves the old runtime and every
// running listener in force and is returned for the NACK.
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
		return deps, p.reject(err)
	}
	up, err := p.prepareListeners(next)
	if err != nil {
		return deps, p.reject(err)
	}
	p.rt.Store(next)
	p.commitListeners(up)
	p.closeRemovedPools(prev, next)
	p.updates.Add(1)
	c := next.Counts
	p.compiled.add(c.ListenersCompiled, c.RoutesCompiled, c.ClustersCompiled)
	p.reused.add(c.ListenersReused, c.RoutesReused, c.ClustersReused)
	p.log.Debug("config applied", "listeners", len(next.Listeners), "clusters", len(next.Clusters), "warming", next.Warming)
	return deps, nil
}

// compileTotals are listener, route and cluster counts.
type compileTotals struct{ listeners, routes, clusters atomic.Uint64 }

func (t *compileTotals) add(l, r, c int) {
	t.listeners.Add(uint64(l))
	t.routes.Add(uint64(r))
	t.clusters.Add(uint64(c))
}

func (p *Proxy) reject(err error) error {
	p.rejects.Add(1)
	msg := err.Error()
	p.lastErr.Store(&msg)
	return err
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
