package dashboard

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/pkg/inspect"
)

// Prefix is where `sluice control` mounts the dashboard.
const Prefix = "/dashboard/"

// Handler serves the single-page app at /dashboard/ and its JSON API:
//
//	GET /dashboard/api/graph?window=1m              the service graph
//	GET /dashboard/api/service?host=H                a service's page
//	GET /dashboard/api/workload?namespace=N&name=W   a workload's page
//	GET /dashboard/api/config                        every resource with its messages
//	GET /dashboard/api/proxies                       proxies and their sync state
//	GET /dashboard/api/bounds                        the scraper's memory use
//	GET /dashboard/api/info                          where the metrics come from
//	GET /dashboard/api/traces?service=S&limit=N      recent traces (traces.go)
//	GET /dashboard/api/trace?id=T                    one trace's waterfall
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix(Prefix, http.FileServerFS(static))
	mux.Handle("GET "+Prefix, noCache(files))
	mux.HandleFunc("GET "+Prefix+"api/graph", d.graph)
	mux.HandleFunc("GET "+Prefix+"api/service", d.service)
	mux.HandleFunc("GET "+Prefix+"api/workload", d.workload)
	mux.HandleFunc("GET "+Prefix+"api/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"entries": ConfigEntries(d.opts.ControlPlane.Config())})
	})
	mux.HandleFunc("GET "+Prefix+"api/proxies", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"proxies": inspect.StatusRows(d.opts.ControlPlane.Proxies(), d.opts.Istiod)})
	})
	mux.HandleFunc("GET "+Prefix+"api/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.Info())
	})
	mux.HandleFunc("GET "+Prefix+"api/bounds", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.Bounds())
	})
	mux.HandleFunc("GET "+Prefix+"api/traces", d.traces)
	mux.HandleFunc("GET "+Prefix+"api/trace", d.trace)
	return mux
}

// noCache makes the browser revalidate the assets, so a new binary's
// dashboard is picked up.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// envelope is what every metrics answer carries besides its data.
type envelope struct {
	Source  string    `json:"source"`
	Window  float64   `json:"window_seconds"`
	Updated time.Time `json:"updated"`
	Errors  []string  `json:"errors"`
	Data    any       `json:"data"`
}

// traffic reads the window asked for (?window=30s, between 10s and 1h).
func (d *Dashboard) traffic(r *http.Request) (*Traffic, error) {
	window := d.opts.Window
	if v := r.URL.Query().Get("window"); v != "" {
		if w, err := time.ParseDuration(v); err == nil {
			window = min(max(w, 10*time.Second), time.Hour)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	return d.metrics.Traffic(ctx, window)
}

func (d *Dashboard) answer(w http.ResponseWriter, r *http.Request, build func(*Traffic) any) {
	t, err := d.traffic(r)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	errs := t.Errors
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, http.StatusOK, envelope{Source: t.Source, Window: t.Window.Seconds(), Updated: time.Now().UTC(), Errors: errs, Data: build(t)})
}

func (d *Dashboard) graph(w http.ResponseWriter, r *http.Request) {
	d.answer(w, r, func(t *Traffic) any { return BuildGraph(t) })
}

func (d *Dashboard) detailInput(t *Traffic) detailInput {
	return detailInput{traffic: t, graph: BuildGraph(t), push: d.opts.ControlPlane.Push(),
		proxies: d.opts.ControlPlane.Proxies(), istiod: d.opts.Istiod}
}

func (d *Dashboard) service(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Query().Get("host")
	if host == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "host is required"})
		return
	}
	d.answer(w, r, func(t *Traffic) any { return serviceDetail(d.detailInput(t), host) })
}

func (d *Dashboard) workload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, name := q.Get("namespace"), q.Get("name")
	if ns == "" || name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "namespace and name are required"})
		return
	}
	d.answer(w, r, func(t *Traffic) any { return workloadDetail(d.detailInput(t), ns, name) })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
