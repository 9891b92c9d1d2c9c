package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/tracestore"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// ControlPlane is what the dashboard reads from `sluice control`.
type ControlPlane interface {
	// Proxies is the sync book of the connected proxies.
	Proxies() []xdsserver.ProxyStatus
	// Config is the current config with what was rejected.
	Config() ConfigInput
	// Push is the newest push context, nil before the first.
	Push() *model.PushContext
}

// Options configure the dashboard.
type Options struct {
	ControlPlane ControlPlane
	// PrometheusAddress, when set, is the Prometheus the metrics are
	// queried from; otherwise every proxy is scraped.
	PrometheusAddress string
	// Scrape configures the scraper when there is no Prometheus; its
	// Targets default to the connected proxies' admin addresses.
	Scrape ScrapeOptions
	// Window is the default rate window (default 1m).
	Window time.Duration
	// Traces is the Zipkin collector the Traces pages read (default: a
	// tracestore with its default bounds).
	Traces *tracestore.Store
	// Istiod names the control plane in the proxies table (its address).
	Istiod string
	Logger *slog.Logger
}

// Dashboard serves the mesh dashboard (api.go) and, without a
// Prometheus, scrapes the proxies.
type Dashboard struct {
	opts    Options
	metrics Metrics
	scraper *Scraper
}

// New makes a dashboard; Run starts its scraper, Handler serves it.
func New(opts Options) (*Dashboard, error) {
	if opts.ControlPlane == nil {
		return nil, fmt.Errorf("dashboard: no control plane")
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Traces == nil {
		opts.Traces = tracestore.New(tracestore.Options{})
	}
	d := &Dashboard{opts: opts}
	if opts.PrometheusAddress != "" {
		p, err := NewPrometheus(opts.PrometheusAddress)
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		d.metrics = p
		return d, nil
	}
	so := opts.Scrape
	if so.Targets == nil {
		so.Targets = func() []Target {
			var out []Target
			for _, p := range opts.ControlPlane.Proxies() {
				out = append(out, Target{ID: p.ID, Admin: p.AdminAddress})
			}
			return out
		}
	}
	d.scraper = NewScraper(so)
	d.metrics = d.scraper
	return d, nil
}

// Run scrapes the proxies until ctx ends (nothing to do with a
// Prometheus).
func (d *Dashboard) Run(ctx context.Context) {
	if d.scraper != nil {
		d.scraper.Run(ctx)
	}
}

// Bounds is the scraper's memory use (zero with a Prometheus).
func (d *Dashboard) Bounds() Bounds {
	if d.scraper == nil {
		return Bounds{}
	}
	return d.scraper.Bounds()
}

// Info says where the dashboard's metrics come from.
type Info struct {
	MetricsSource     string `json:"metrics_source"`
	PrometheusAddress string `json:"prometheus_address,omitempty"`
}

// Info is the dashboard's metrics source.
func (d *Dashboard) Info() Info {
	if d.scraper != nil {
		return Info{MetricsSource: SourceProxies}
	}
	return Info{MetricsSource: SourcePrometheus, PrometheusAddress: d.opts.PrometheusAddress}
}
