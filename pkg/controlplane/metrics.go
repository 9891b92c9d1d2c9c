package controlplane

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// metrics are the control plane's Prometheus metrics, served at /metrics
// and named as istiod's: the xDS ones live in xdsserver, the CA's in ca,
// and these are the push context's (istio/istio pilot/pkg/xds/monitoring.go
// pilot_services; pilot/pkg/model/push_context.go pilot_conflict_*), plus
// sluice_config_errors. Each controller has its own registry.
type metrics struct {
	reg *prometheus.Registry
	xds *xdsserver.Metrics
	ca  *ca.Metrics
	// services is pilot_services: services in the newest push context.
	services prometheus.Gauge
	// configErrors is sluice_config_errors: resources rejected now.
	configErrors prometheus.Gauge
}

func newMetrics(c *Controller) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, xds: xdsserver.NewMetrics(reg), ca: ca.NewMetrics(reg),
		services: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilot_services",
			Help: "Total services known to pilot."}),
		configErrors: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_config_errors",
			Help: "Config resources rejected now (each keeps its last good version, if any, in force)."}),
	}
	reg.MustRegister(m.services, m.configErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilot_conflict_outbound_listener_tcp_over_current_tcp",
			Help: "Number of conflicting tcp listeners with current tcp listener."},
			func() float64 { return float64(c.conflictCount(func(n conflictCounts) int { return n.outboundTCP })) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pilot_conflict_inbound_listener",
			Help: "Number of conflicting inbound listeners."},
			func() float64 { return float64(c.conflictCount(func(n conflictCounts) int { return n.inbound })) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// conflictCounts are one proxy's conflicts of the kinds istiod counts.
type conflictCounts struct{ outboundTCP, inbound int }

// conflictCount sums one kind of conflict over the connected proxies'
// last generation, as istiod's gauges count them in the newest push.
func (c *Controller) conflictCount(kind func(conflictCounts) int) int {
	connected := map[string]bool{}
	for _, p := range c.server.Proxies() {
		connected[p.ID] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, counts := range c.conflictCounts {
		if connected[id] {
			n += kind(counts)
		}
	}
	return n
}
