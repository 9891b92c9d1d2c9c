package inject

import "github.com/prometheus/client_golang/prometheus"

// Metrics are istiod's injection metrics (pkg/kube/inject/monitoring.go).
type Metrics struct {
	Requests prometheus.Counter
	Success  prometheus.Counter
	Failure  prometheus.Counter
	Skip     prometheus.Counter
	Time     prometheus.Histogram
}

// NewMetrics registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_requests_total", Help: "Total number of sidecar injection requests."}),
		Success:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_success_total", Help: "Total number of successful sidecar injection requests."}),
		Failure:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_failure_total", Help: "Total number of failed sidecar injection requests."}),
		Skip:     prometheus.NewCounter(prometheus.CounterOpts{Name: "sidecar_injection_skip_total", Help: "Total number of skipped sidecar injection requests."}),
		Time: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sidecar_injection_time_seconds", Help: "Total time taken for injection in seconds.",
			Buckets: []float64{.1, 1, 3, 5, 10, 20, 30, 60}}),
	}
	reg.MustRegister(m.Requests, m.Success, m.Failure, m.Skip, m.Time)
	return m
}
