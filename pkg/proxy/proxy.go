// Package proxy is `sluice proxy`: it announces itself to the control
// plane, compiles what it receives into a runtime, swaps it in atomically
// and serves traffic and an admin endpoint.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/downstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
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
	// ControlPlane says how to reach the xDS/CA port: the token proving
	// the proxy's identity, TLS and the root file to verify it with
	// (its Address is XDSAddress when empty).
	ControlPlane identity.ControlPlane
	// CertTTL is the workload certificate lifetime asked for
	// (istio-agent's SECRET_TTL; 0: the CA's default).
	CertTTL time.Duration
	Logger  *slog.Logger
	// AuthzExplainHeader names the deciding RBAC policy in a response
	// header of denied requests (--authz-explain-header; off by default).
	AuthzExplainHeader bool
	// MetricsAddress, when set, serves Istio's standard metrics at
	// <address>/stats/prometheus (Istio's :15090); they are always on the
	// admin endpoint's /stats/prometheus too.
	MetricsAddress string
	// XDSProtocol is the ADS variant (--xds-protocol; empty: auto).
	XDSProtocol xdsclient.Protocol
	// XDSMaxMessageBytes is the largest xDS response accepted
	// (--xds-max-message-bytes; 0: xdsclient.DefaultMaxMessageBytes).
	XDSMaxMessageBytes int
	// AgentAddress, when set, serves the agent port (istio-agent's
	// 15020): /healthz/ready and the app probes of AppProbers (agent.go).
	AgentAddress string
	// AppProbers is ISTIO_KUBE_APP_PROBERS: the app's original probes by
	// agent path, as the injector wrote them.
	AppProbers string
}

// DefaultWorkloadIP is the workload address a proxy assumes without --ip.
const DefaultWorkloadIP = "127.0.0.1"

// sourceIP is the address a sidecar's upstream connections leave from:
// its workload address (--ip) when it was given one, so servers see the
// workload's IP (source.ip, ipBlocks) as a pod's connections show it. A
// router's, or a sidecar's at the default address, are left to the
// kernel.
func sourceIP(id model.Proxy) netip.Addr {
	if id.Type != model.Sidecar || len(id.IPs) == 0 || id.IPs[0] == DefaultWorkloadIP {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(id.IPs[0])
	if err != nil {
		return netip.Addr{}
	}
	return ip
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
	// servers are the listeners' servers by name, published after every
	// listener change, read by the hand-off of captured connections.
	servers  atomic.Pointer[map[string]*downstream.Server]
	started  time.Time
	ctx      context.Context
	identity *identity.Workload
	updates  atomic.Uint64
	rejects  atomic.Uint64
	// compiled and reused count, over every accepted update, the
	// listeners, routes and clusters built anew and taken unchanged.
	compiled, reused compileTotals
	lastErr          atomic.Pointer[string]
	// conns are the listeners' connection counters by listener name,
	// kept across pushes.
	connsMu sync.Mutex
	conns   map[string]*downstream.Counters
}

type activeListener struct {
	name    string
	address string
	srv     listenerServer
	ds      *downstream.Server
	serve   func() error
	// sock is nil for a bind_to_port false listener (unbound).
	sock    *socket
	view    *socketView
	unbound bool
}

// listenerServer is what serves one listener's connections.
type listenerServer interface {
	Shutdown(ctx context.Context)
	Close()
}

// New prepares a proxy; Run starts it.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Proxy{opts: opts, log: opts.Logger, stats: dataplane.NewStatsStore(), http: httpproxy.NewShared(), listeners: map[string]*activeListener{}, started: time.Now()}
	p.rt.Store(&dataplane.Runtime{Listeners: map[string]*dataplane.Listener{}})
	// Spans name the proxy by its node id and Istio's service cluster,
	// and reach their collector through the runtime's clusters.
	p.http.Tracing = tracing.NewEnv(tracing.EnvOptions{NodeID: opts.Identity.NodeID(), ServiceCluster: opts.Identity.ServiceCluster(),
		Clusters: httpproxy.ClustersOf(&p.rt), Logger: opts.Logger})
	rbac.Configure(p.http.Stats, rbac.Options{ExplainHeader: opts.AuthzExplainHeader, Logger: opts.Logger})
	return p
}

// connCounters returns the connection counters of a listener, making
// them on first use.
func (p *Proxy) connCounters(name string) *downstream.Counters {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	if p.conns == nil {
		p.conns = map[string]*downstream.Counters{}
	}
	c := p.conns[name]
	if c == nil {
		c = &downstream.Counters{}
		p.conns[name] = c
	}
	return c
}

// Runtime returns the runtime in force.
func (p *Proxy) Runtime() *dataplane.Runtime { return p.rt.Load() }

// Run serves until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	p.ctx = ctx
	cp := p.opts.ControlPlane
	if cp.Address == "" {
		cp.Address = p.opts.XDSAddress
	}
	dial, err := cp.DialOptions()
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	// The workload certificate comes from the control plane's CA, as
	// istio-agent gets it for Envoy; config needing it waits for it.
	wl, err := identity.New(identity.Options{ControlPlane: cp, TrustDomain: p.opts.TrustDomain,
		Namespace: p.opts.Identity.Namespace, ServiceAccount: p.opts.Identity.ServiceAccount,
		TTL: p.opts.CertTTL, Logger: p.log})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.identity = wl
	metrics, err := istiometrics.New(istiometrics.Options{Self: p.opts.Identity, TrustDomain: p.opts.TrustDomain})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.http.Metrics = metrics
	if p.opts.MetricsAddress != "" {
		bound, stop, err := serveMetrics(p.opts.MetricsAddress, metrics)
		if err != nil {
			return fmt.Errorf("proxy: metrics listener: %w", err)
		}
		defer stop()
		p.log.Info("serving Istio's standard metrics", "address", "http://"+bound+"/stats/prometheus")
	}
	if p.opts.AgentAddress != "" {
		bound, stop, err := p.serveAgent(p.opts.AgentAddress, p.opts.AppProbers)
		if err != nil {
			return fmt.Errorf("proxy: agent: %w", err)
		}
		defer stop()
		p.log.Info("serving the agent port", "address", bound)
	} else if p.opts.AppProbers != "" {
		return fmt.Errorf("proxy: app probers given (%s) but no agent address to serve them on", inject.EnvAppProbers)
	}
	adminLis, err := net.Listen("tcp", p.opts.AdminAddress)
	if err != nil {
		return fmt.Errorf("proxy: admin listener: %w", err)
	}
	admin := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go admin.Serve(adminLis)
	// Announced (SLUICE_ADMIN_ADDRESS) so `sluice status` can read this
	// proxy's counters.
	p.opts.Identity.AdminAddress = adminLis.Addr().String()
	p.log.Info("proxy starting", "id", p.opts.Identity.NodeID(), "xds", p.opts.XDSAddress, "xds_tls", cp.TLS,
		"admin", adminLis.Addr().String(), "concurrency", runtime.GOMAXPROCS(0))
	go wl.Run(ctx)
	client := xdsclient.New(xdsclient.Options{
		Address:         p.opts.XDSAddress,
		DialOptions:     dial,
		Node:            p.opts.Identity.Node(),
		Apply:           p.apply,
		Logger:          p.log,
		Protocol:        p.opts.XDSProtocol,
		MaxMessageBytes: p.opts.XDSMaxMessageBytes,
	})
	err = client.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	admin.Shutdown(shutdown)
	p.shutdownListeners(shutdown)
	// The drained requests' access log lines are written before exit.
	accesslog.FlushAll()
	// So are the spans of the last requests.
	if err := p.http.Tracing.Shutdown(shutdown); err != nil {
		p.log.Warn("tracing: spans not sent at shutdown", "error", err)
	}
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
	copts := dataplane.CompileOptions{Resources: res, Previous: prev, Stats: p.stats, Hosts: p.opts.Hosts, SourceIP: sourceIP(p.opts.Identity)}
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
	if m := p.http.Metrics; m != nil {
		// The metric families take the label names of the new chains'
		// stats filters before any request records with them.
		m.Configure(next.StatsConfigs())
	}
	p.rt.Store(next)
	p.commitListeners(up)
	p.closeRemovedPools(prev, next)
	p.updates.Add(1)
	c := next.Counts
	p.compiled.add(c.ListenersCompiled, c.RoutesCompiled, c.ClustersCompiled)
	p.reused.add(c.ListenersReused, c.RoutesReused, c.ClustersReused)
	p.log.Debug("config applied", "listeners", len(next.Listeners), "clusters", len(next.Clusters), "warming", next.Warming)
	if !prev.Ready() && next.Ready() {
		// Start-up garbage (package initialisation, the first responses'
		// decoding and compilation) goes back to the OS once, so an idle
		// proxy's RSS is its live config, not its start-up's peak.
		go debug.FreeOSMemory()
	}
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
		nc := next.Clusters[name]
		for _, t := range c.Transports {
			if nc == nil || !slices.Contains(nc.Transports, t) {
				t.Close()
			}
		}
	}
}
