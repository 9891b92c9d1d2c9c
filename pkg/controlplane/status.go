package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/dashboard"
	"github.com/sluice-mesh/sluice/pkg/jwks"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsredact"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// Status is the control plane's state, served as JSON at /debug/status.
type Status struct {
	Ready     bool   `json:"ready"`
	ConfigDir string `json:"config_dir"`
	// Kubernetes is the API server config is read from, if any.
	Kubernetes   string   `json:"kubernetes,omitempty"`
	Resources    int      `json:"resources"`
	ConfigErrors []string `json:"config_errors"`
	// NotEnforced are resources accepted but not enforced yet (kinds
	// sluice does not build), each with why; never silent.
	NotEnforced []config.NotEnforced `json:"not_enforced"`
	// Conflicts are parts of the config left out for a proxy (a Gateway
	// server clashing with another, a missing credential, ...), by proxy.
	Conflicts map[string][]string `json:"conflicts,omitempty"`
	LastPush  pushRecord          `json:"last_push"`
	// ConfigRead is when the config folder was last read, set once what
	// that read found has been pushed: a file written before it is in
	// force.
	ConfigRead time.Time               `json:"config_read"`
	Proxies    []xdsserver.ProxyStatus `json:"proxies"`
	// JwksFailures are RequestAuthentication key sets the control plane
	// could not fetch: tokens of those issuers are refused until a
	// refresh succeeds.
	JwksFailures []jwks.Failure `json:"jwks_failures,omitempty"`
	// MTLS is, per connected sidecar, the PeerAuthentication mode of each
	// inbound port and its plaintext and mTLS connection counts
	// (mtls_status.go).
	MTLS []WorkloadMTLS `json:"mtls"`
	// Analysis is what the analyzers found in the config last pushed,
	// per resource (analysis.go); full detail at /debug/analysis.
	Analysis AnalysisSummary `json:"analysis"`
}

// Status reports the control plane's state.
func (c *Controller) Status() Status {
	c.mu.Lock()
	st := Status{Ready: c.ready.Load(), ConfigDir: c.opts.ConfigDir, Resources: len(c.current.Resources), LastPush: c.last, ConfigRead: c.configRead}
	if c.opts.Kube != nil {
		st.Kubernetes = c.opts.Kube.Host
	}
	for _, e := range c.current.Errors {
		st.ConfigErrors = append(st.ConfigErrors, e.Error())
	}
	st.NotEnforced = append([]config.NotEnforced{}, c.current.NotEnforced...)
	conflicts := make(map[string][]string, len(c.conflicts))
	for id, list := range c.conflicts {
		conflicts[id] = append([]string(nil), list...)
	}
	c.mu.Unlock()
	if p := c.push.Load(); p != nil {
		// Telemetry provider references the push cannot honour (model
		// TelemetryErrors): the provider is skipped, as istiod skips it.
		for _, e := range p.TelemetryErrors() {
			st.ConfigErrors = append(st.ConfigErrors, e.Error())
		}
	}
	st.Proxies = c.server.Status()
	st.JwksFailures = c.jwks.Failures()
	for _, p := range st.Proxies { // only proxies still connected
		if list, ok := conflicts[p.ID]; ok {
			if st.Conflicts == nil {
				st.Conflicts = map[string][]string{}
			}
			st.Conflicts[p.ID] = list
		}
	}
	st.MTLS = c.mtlsStatus(context.Background())
	st.Analysis = c.analysisSummary()
	return st
}

// mtlsStatus is the mTLS view of the connected sidecars at the newest push.
func (c *Controller) mtlsStatus(ctx context.Context) []WorkloadMTLS {
	var pc *model.PushContext
	if p := c.push.Load(); p != nil {
		pc = p.PushContext
	}
	return mtlsStatus(ctx, mtlsStatusOptions{push: pc, proxies: c.server.Proxies(), stats: fetchStats,
		listeners: func(id string) []*listener.Listener {
			snap, err := c.server.Snapshot(id)
			if err != nil {
				return nil
			}
			return publishedListeners(snap)
		}})
}

func (c *Controller) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !c.ready.Load() {
			http.Error(w, "not ready: config not loaded", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	// /metrics is istiod's control plane metrics (metrics.go).
	mux.Handle("GET /metrics", c.metrics.handler())
	mux.HandleFunc("GET /debug/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, c.Status())
	})
	// /debug/gatewayapi is the Kubernetes Gateway API status of the last
	// push: conditions per GatewayClass, Gateway, listener and route parent.
	mux.HandleFunc("GET /debug/gatewayapi", func(w http.ResponseWriter, r *http.Request) {
		pc := c.push.Load()
		if pc == nil || pc.GatewayAPIStatus() == nil {
			http.Error(w, "no push yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, pc.GatewayAPIStatus())
	})
	// /dashboard/ is the mesh dashboard and its API (pkg/dashboard).
	mux.Handle(dashboard.Prefix, c.dashboard.Handler())
	mux.Handle("GET /dashboard", http.RedirectHandler(dashboard.Prefix, http.StatusMovedPermanently))
	// /api/v2/ is the dashboard's Zipkin collector and query API
	// (pkg/tracestore): proxies' zipkin tracers can report here.
	mux.Handle("/api/v2/", c.dashboard.Traces().Handler())
	c.mountAnalysis(mux)
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, c.server.Status())
	})
	mux.HandleFunc("GET /debug/configz", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		snap := c.current
		c.mu.Unlock()
		type entry struct {
			Kind, Namespace, Name, Source string
		}
		out := struct {
			Resources []entry  `json:"resources"`
			Errors    []string `json:"errors"`
		}{Resources: []entry{}, Errors: []string{}}
		for _, r := range snap.Resources {
			out.Resources = append(out.Resources, entry{string(r.Kind), r.Namespace, r.Name, r.Source.String()})
		}
		for _, e := range snap.Errors {
			out.Errors = append(out.Errors, e.Error())
		}
		writeJSON(w, out)
	})
	// Go's profiler, as istiod serves /debug/pprof on its monitoring port:
	// go tool pprof http://HTTP_ADDRESS/debug/pprof/heap
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	// /debug/config_dump?proxy=ID is the xDS last published for a proxy.
	mux.HandleFunc("GET /debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxy")
		snap, err := c.server.Snapshot(id)
		if err != nil {
			http.Error(w, "no config for proxy "+id+": "+err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, dumpSnapshot(snap))
	})
	return mux
}

// DashboardOptions configure the mesh dashboard.
type DashboardOptions struct {
	// PrometheusAddress, when set, is the Prometheus (http://host:port)
	// the dashboard queries; otherwise it scrapes every proxy's admin
	// /stats/prometheus itself.
	PrometheusAddress string
	// ScrapeInterval is how often proxies are scraped (default 5s).
	ScrapeInterval time.Duration
}

func newDashboard(c *Controller) (*dashboard.Dashboard, error) {
	return dashboard.New(dashboard.Options{ControlPlane: dashboardSource{c}, PrometheusAddress: c.opts.Dashboard.PrometheusAddress,
		Scrape: dashboard.ScrapeOptions{Interval: c.opts.Dashboard.ScrapeInterval}, Istiod: c.opts.HTTPAddress, Logger: c.log})
}

// dashboardSource is what the dashboard reads of the controller.
type dashboardSource struct{ c *Controller }

func (d dashboardSource) Proxies() []xdsserver.ProxyStatus { return d.c.server.Status() }

func (d dashboardSource) Config() dashboard.ConfigInput {
	byResource := d.c.analysisSummary().ByResource
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	return dashboard.ConfigInput{Resources: d.c.current.Resources, Errors: d.c.current.Errors, NotEnforced: d.c.current.NotEnforced,
		Analysis: byResource}
}

func (d dashboardSource) Push() *model.PushContext {
	if p := d.c.push.Load(); p != nil {
		return p.PushContext
	}
	return nil
}

// dumpSnapshot renders a snapshot as JSON-ready maps, per type URL.
func dumpSnapshot(snap *xdsserver.Snapshot) map[string]any {
	out := map[string]any{}
	for _, t := range []string{
		"type.googleapis.com/envoy.config.cluster.v3.Cluster",
		"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
		"type.googleapis.com/envoy.config.listener.v3.Listener",
		"type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
		xdsgen.AddressType, xdsgen.AuthorizationType,
	} {
		res := snap.GetResources(t)
		names := make([]string, 0, len(res))
		for n := range res {
			names = append(names, n)
		}
		sort.Strings(names)
		items := make([]json.RawMessage, 0, len(names))
		for _, n := range names {
			// Private keys (gateway credentials) redacted, as Envoy's config_dump.
			b, err := protojson.Marshal(xdsredact.Redact(res[n]))
			if err != nil {
				continue
			}
			items = append(items, b)
		}
		out[t] = map[string]any{"version": snap.GetVersion(t), "resources": items}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
