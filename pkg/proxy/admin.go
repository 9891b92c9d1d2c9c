package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/version"
	"github.com/sluice-mesh/sluice/pkg/xdsredact"
)

// adminHandler serves Envoy-style admin endpoints.
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "sluice proxy admin: /ready /server_info /config_dump /stats /stats/prometheus /clusters /listeners /certs /debug/authz /debug/pprof/")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		rt := p.rt.Load()
		if !rt.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: listeners=%d warming=%v\n", len(rt.Listeners), rt.Warming)
			return
		}
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("GET /server_info", p.serverInfo)
	mux.HandleFunc("GET /config_dump", p.configDump)
	mux.HandleFunc("GET /stats", p.statsText)
	// Istio's standard metrics in Prometheus' text format, as Envoy's
	// admin serves its stats at /stats/prometheus.
	mux.HandleFunc("GET /stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		m := p.http.Metrics
		if m == nil {
			http.Error(w, "metrics not started", http.StatusServiceUnavailable)
			return
		}
		m.Handler().ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /clusters", p.clustersText)
	// Envoy's /certs: the workload certificate and trust bundle in force
	// (serial, SANs, validity), to watch renewals and root rotation.
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if p.identity == nil {
			enc.Encode(identity.CertsView{Certificates: []identity.CertificatePair{}})
			return
		}
		enc.Encode(p.identity.Certs())
	})
	// The recent RBAC decisions, newest first, each with the policy that
	// decided (or "no ALLOW policy matched"); ?format=json for JSON.
	mux.HandleFunc("GET /debug/authz", func(w http.ResponseWriter, r *http.Request) {
		asJSON := r.URL.Query().Get("format") == "json"
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain")
		}
		rbac.WriteDebug(w, p.http.Stats, asJSON)
	})
	// Go's profiler, as Envoy's admin has /cpuprofiler and /heapprofiler:
	// go tool pprof http://ADMIN/debug/pprof/profile?seconds=10
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /listeners", func(w http.ResponseWriter, r *http.Request) {
		rt := p.rt.Load()
		for _, n := range rt.ListenerNames() {
			fmt.Fprintf(w, "%s::%s\n", n, rt.Listeners[n].Address)
		}
	})
	return mux
}

func (p *Proxy) configDump(w http.ResponseWriter, r *http.Request) {
	rt := p.rt.Load()
	type listenerOut struct {
		Name, Address, Route string
		Inbound              bool
	}
	type clusterOut struct {
		Name  string   `json:"name"`
		Hosts []string `json:"hosts"`
		HTTP2 bool     `json:"http2,omitempty"`
	}
	out := struct {
		Node    map[string]any               `json:"node"`
		Runtime map[string]any               `json:"runtime"`
		XDS     map[string][]json.RawMessage `json:"xds"`
	}{XDS: map[string][]json.RawMessage{}}
	id := p.opts.Identity
	out.Node = map[string]any{"id": id.NodeID(), "name": id.Name, "namespace": id.Namespace, "labels": id.Labels, "type": id.Type}
	var ls []listenerOut
	for _, n := range rt.ListenerNames() {
		l := rt.Listeners[n]
		ls = append(ls, listenerOut{Name: l.Name, Address: l.Address, Route: l.RouteName, Inbound: l.Inbound})
	}
	var cs []clusterOut
	for _, n := range slices.Sorted(maps.Keys(rt.Clusters)) {
		c := rt.Clusters[n]
		co := clusterOut{Name: n, HTTP2: c.HTTP2, Hosts: []string{}}
		for _, h := range c.Hosts {
			co.Hosts = append(co.Hosts, h.Address)
		}
		cs = append(cs, co)
	}
	out.Runtime = map[string]any{
		"built": rt.Built, "ready": rt.Ready(), "warming": rt.Warming, "versions": rt.Source.Versions,
		"listeners": ls, "routes": slices.Sorted(maps.Keys(rt.Routes)), "clusters": cs,
		"updates_accepted": p.updates.Load(), "updates_rejected": p.rejects.Load(),
		"last_compile": rt.Counts,
	}
	if e := p.lastErr.Load(); e != nil {
		out.Runtime["last_rejection"] = *e
	}
	vhds := rt.Source.VirtualHostsByConfig()
	for typ, items := range rt.Source.Items {
		short := typ[strings.LastIndexByte(typ, '.')+1:]
		for _, name := range slices.Sorted(maps.Keys(items)) {
			m := items[name]
			if rc, ok := m.(*route.RouteConfiguration); ok && rc.Vhds != nil {
				// As Envoy's, the route configuration in use: its
				// virtual hosts and those VHDS gave it.
				m = xdsclient.MergedRouteConfig(rc, vhds[name])
			}
			// Private keys (gateway credentials) redacted, as Envoy's config_dump.
			b, err := protojson.Marshal(xdsredact.Redact(m))
			if err == nil {
				out.XDS[short] = append(out.XDS[short], b)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

func (p *Proxy) statsText(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "sluice.config.update_success: %d\n", p.updates.Load())
	fmt.Fprintf(w, "sluice.config.update_rejected: %d\n", p.rejects.Load())
	for _, kv := range []struct {
		kind             string
		compiled, reused *atomic.Uint64
	}{{"listeners", &p.compiled.listeners, &p.reused.listeners}, {"routes", &p.compiled.routes, &p.reused.routes},
		{"clusters", &p.compiled.clusters, &p.reused.clusters}} {
		fmt.Fprintf(w, "sluice.config.%s_compiled: %d\n", kv.kind, kv.compiled.Load())
		fmt.Fprintf(w, "sluice.config.%s_reused: %d\n", kv.kind, kv.reused.Load())
	}
	for _, c := range p.rt.Load().Clusters {
		c.Tick() // bring outlier gauges up to date (the interval runs lazily)
	}
	p.stats.Each(func(name string, st *upstream.Stats) {
		for _, kv := range st.StatValues() {
			fmt.Fprintf(w, "cluster.%s.%s: %d\n", name, kv[0], kv[1])
		}
	})
	p.writeConnStats(w)
	p.http.Stats.WriteText(w)
	p.http.Tracing.WriteText(w)
	accesslog.WriteStats(w)
}

// writeConnStats writes each listener's connection counters.
func (p *Proxy) writeConnStats(w io.Writer) {
	p.connsMu.Lock()
	names := slices.Sorted(maps.Keys(p.conns))
	p.connsMu.Unlock()
	rt := p.rt.Load()
	for _, n := range names {
		c := p.connCounters(n)
		fmt.Fprintf(w, "listener.%s.downstream_cx_mtls: %d\n", n, c.MTLS.Load())
		fmt.Fprintf(w, "listener.%s.downstream_cx_plaintext: %d\n", n, c.Plaintext.Load())
		fmt.Fprintf(w, "listener.%s.no_filter_chain_match: %d\n", n, c.NoChainMatch.Load())
		fmt.Fprintf(w, "listener.%s.downstream_pre_cx_timeout: %d\n", n, c.PreCxTimeout.Load())
		if rt == nil {
			continue
		}
		if l := rt.Listeners[n]; l != nil && l.HandOff {
			// sluice's own: connections this use_original_dst listener
			// handed to the listener of their original destination.
			fmt.Fprintf(w, "listener.%s.sluice.handed_off: %d\n", n, c.HandedOff.Load())
		}
		if l := rt.Listeners[n]; l != nil && l.HTTPInspector != nil {
			fmt.Fprintf(w, "listener.%s.http_inspector.http10_found: %d\n", n, c.HTTP10.Load())
			fmt.Fprintf(w, "listener.%s.http_inspector.http11_found: %d\n", n, c.HTTP11.Load())
			fmt.Fprintf(w, "listener.%s.http_inspector.http2_found: %d\n", n, c.HTTP2.Load())
			fmt.Fprintf(w, "listener.%s.http_inspector.http_not_found: %d\n", n, c.NotHTTP.Load())
		}
	}
}

// clustersText lists each cluster's circuit breakers and each host as
// Envoy's /clusters does (name::address::stat::value), with the host's
// balancing, limits and outlier state.
func (p *Proxy) clustersText(w http.ResponseWriter, r *http.Request) {
	rt := p.rt.Load()
	w.Header().Set("Content-Type", "text/plain")
	for _, n := range slices.Sorted(maps.Keys(rt.Clusters)) {
		c := rt.Clusters[n]
		c.Tick() // outlier detection's interval runs lazily
		th := c.Limits
		fmt.Fprintf(w, "%s::default_priority::max_connections::%d\n", n, th.MaxConnections)
		fmt.Fprintf(w, "%s::default_priority::max_pending_requests::%d\n", n, th.MaxPendingRequests)
		fmt.Fprintf(w, "%s::default_priority::max_requests::%d\n", n, th.MaxRequests)
		fmt.Fprintf(w, "%s::default_priority::max_retries::%d\n", n, th.MaxRetries)
		fmt.Fprintf(w, "%s::added_via_api::true\n", n)
		fmt.Fprintf(w, "%s::lb_policy::%s\n", n, c.LB.Policy)
		for i, h := range c.Hosts {
			s := c.Snapshot(h)
			pre := n + "::" + s.Address + "::"
			health := "healthy"
			if s.Ejected {
				health = "/failed_outlier_check"
			}
			region, zone, subzone := splitLocality(s.Locality)
			fmt.Fprintf(w, "%scx_active::%d\n", pre, s.CxActive)
			fmt.Fprintf(w, "%scx_connect_fail::%d\n", pre, s.CxConnectFail)
			fmt.Fprintf(w, "%scx_total::%d\n", pre, s.CxTotal)
			fmt.Fprintf(w, "%srq_active::%d\n", pre, s.Active)
			fmt.Fprintf(w, "%srq_error::%d\n", pre, s.Failures)
			fmt.Fprintf(w, "%srq_success::%d\n", pre, s.Requests-min(s.Requests, s.Failures))
			fmt.Fprintf(w, "%srq_timeout::%d\n", pre, s.Timeouts)
			fmt.Fprintf(w, "%srq_total::%d\n", pre, s.Requests)
			fmt.Fprintf(w, "%shealth_flags::%s\n", pre, health)
			fmt.Fprintf(w, "%sweight::%d\n", pre, s.Weight)
			fmt.Fprintf(w, "%sregion::%s\n", pre, region)
			fmt.Fprintf(w, "%szone::%s\n", pre, zone)
			fmt.Fprintf(w, "%ssub_zone::%s\n", pre, subzone)
			fmt.Fprintf(w, "%slocality::%s\n", pre, s.Locality)
			fmt.Fprintf(w, "%spriority::%d\n", pre, c.PriorityOf(i))
			fmt.Fprintf(w, "%snum_ejections::%d\n", pre, s.NumEjections)
			fmt.Fprintf(w, "%sconsecutive_5xx::%d\n", pre, s.Consecutive5xx)
		}
	}
}

func splitLocality(l string) (region, zone, subzone string) {
	parts := strings.SplitN(l, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// serverInfo is Envoy's /server_info, the fields sluice has: version,
// state (LIVE once every listener is warm, else PRE_INITIALIZING), uptime
// and the command line's concurrency (the proxy's GOMAXPROCS).
func (p *Proxy) serverInfo(w http.ResponseWriter, r *http.Request) {
	state := "PRE_INITIALIZING"
	if p.rt.Load().Ready() {
		state = "LIVE"
	}
	info := map[string]any{
		"version":              version.Get(),
		"state":                state,
		"uptime_current_epoch": fmt.Sprintf("%.0fs", time.Since(p.started).Seconds()),
		"command_line_options": map[string]any{"concurrency": runtime.GOMAXPROCS(0)},
		"node":                 map[string]any{"id": p.opts.Identity.NodeID()},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}
