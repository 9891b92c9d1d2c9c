package ca

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the certificate service's Prometheus metrics, named as
// istiod's (istio/istio security/pkg/server/ca/monitoring.go).
type Metrics struct {
	// csr is citadel_server_csr_count: every certificate request
	// received, counted before authentication, as istiod's
	// CreateCertificate does.
	csr prometheus.Counter
	// success is citadel_server_success_cert_issuance_count.
	success prometheus.Counter
}

// NewMetrics makes the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		csr: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_count",
			Help: "The number of CSRs received by Citadel server."}),
		success: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_success_cert_issuance_count",
			Help: "The number of certificates issuances that have succeeded."}),
	}
	if reg != nil {
		reg.MustRegister(m.csr, m.success)
	}
	return m
}
