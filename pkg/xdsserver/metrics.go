package xdsserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the xDS server's Prometheus metrics, named, labelled and
// bucketed as istiod's (istio/istio pilot/pkg/xds/monitoring.go and
// pkg/xds/monitoring.go). Only counters, gauges and histograms are
// touched on the push path.
type Metrics struct {
	// clients is pilot_xds: connected proxies by their version.
	clients *prometheus.GaugeVec
	// pushes is pilot_xds_pushes: responses sent, by type (cds, eds,
	// lds, rds).
	pushes *prometheus.CounterVec
	// pushTime is pilot_xds_push_time: from the start of a type's push
	// (the proxy's request for it, or the generation of the snapshot that
	// changed it, whichever is later) to its response being sent.
	pushTime *prometheus.HistogramVec
	// rejects is pilot_total_xds_rejects: NACKs by type.
	rejects *prometheus.CounterVec
	// convergence is pilot_proxy_convergence_time: from the first config
	// change merged into a push to a connected proxy being sent every
	// type that push changed for it.
	convergence prometheus.Histogram
	// configSize is pilot_xds_config_size_bytes: the resources' bytes of
	// each response, by type URL (istiod's xdsgen.go ResourceSize, labelled
	// with w.TypeUrl).
	configSize *prometheus.HistogramVec
}

// metricTypes are the types istiod labels its per-type xDS metrics with;
// their series exist from the start at zero, so a dashboard shows "no
// rejects" rather than nothing.
var metricTypes = []string{"cds", "eds", "lds", "rds"}

// NewMetrics makes the metrics and registers them on reg (nil: not
// registered, as in tests of the server alone).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pilot_xds",
			Help: "Number of endpoints connected to this pilot using XDS."}, []string{"version"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_xds_pushes",
			Help: "Pilot build and send errors for lds, rds, cds and eds."}, []string{"type"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pilot_xds_push_time",
			Help:    "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
			Buckets: []float64{.01, .1, .5, 1, 3, 5, 10, 20, 30}}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_total_xds_rejects",
			Help: "Total number of XDS responses from pilot rejected by proxy."}, []string{"type"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pilot_proxy_convergence_time",
			Help:    "Delay in seconds between config change and a proxy receiving all required configuration.",
			Buckets: []float64{.1, .5, 1, 3, 5, 10, 20, 30}}),
		configSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pilot_xds_config_size_bytes",
			Help:    "Distribution of configuration sizes pushed to clients",
			Buckets: []float64{1, 10000, 1000000, 4000000, 10000000, 40000000}}, []string{"type"}),
	}
	for _, t := range metricTypes {
		m.pushes.WithLabelValues(t)
		m.rejects.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.clients, m.pushes, m.pushTime, m.rejects, m.convergence, m.configSize)
	}
	return m
}

func (m *Metrics) connected(version string, delta float64) {
	m.clients.WithLabelValues(version).Add(delta)
}

func (m *Metrics) sent(typeURL string, size int, took time.Duration) {
	t := metricType(typeURL)
	m.pushes.WithLabelValues(t).Inc()
	m.pushTime.WithLabelValues(t).Observe(took.Seconds())
	m.configSize.WithLabelValues(typeURL).Observe(float64(size))
}

func (m *Metrics) rejected(typeURL string) { m.rejects.WithLabelValues(metricType(typeURL)).Inc() }

// metricType is the type label istiod uses (istio/istio pkg/model/xds.go
// GetMetricType).
func metricType(typeURL string) string {
	switch t := shortType(typeURL); t {
	case "CDS":
		return "cds"
	case "EDS":
		return "eds"
	case "LDS":
		return "lds"
	case "RDS":
		return "rds"
	default:
		return t
	}
}
