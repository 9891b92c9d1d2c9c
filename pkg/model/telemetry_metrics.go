package model

import (
	"maps"
	"slices"
	"sort"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	tpb "istio.io/api/telemetry/v1alpha1"
)

// metricNames maps Istio's metric enum to the Prometheus name without the
// istio_ prefix (istiod's metricToPrometheusMetric).
var metricNames = map[string]string{
	"REQUEST_COUNT":          "requests_total",
	"REQUEST_DURATION":       "request_duration_milliseconds",
	"REQUEST_SIZE":           "request_bytes",
	"RESPONSE_SIZE":          "response_bytes",
	"TCP_OPENED_CONNECTIONS": "tcp_connections_opened_total",
	"TCP_CLOSED_CONNECTIONS": "tcp_connections_closed_total",
	"TCP_SENT_BYTES":         "tcp_sent_bytes_total",
	"TCP_RECEIVED_BYTES":     "tcp_received_bytes_total",
	"GRPC_REQUEST_MESSAGES":  "request_messages_total",
	"GRPC_RESPONSE_MESSAGES": "response_messages_total",
}

// PrometheusMetricName is the stats filter's name of a Telemetry metric
// enum name (istiod's metricToPrometheusMetric); a name already written
// the stats way (requests_total) is returned as it is.
func PrometheusMetricName(name string) string {
	if n, ok := metricNames[name]; ok {
		return n
	}
	return name
}

// allMetrics is every Istio metric enum name but ALL_METRICS, sorted.
var allMetrics = func() []string {
	var out []string
	for name := range tpb.MetricSelector_IstioMetric_value {
		if name != tpb.MetricSelector_ALL_METRICS.String() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}()

// metricOverride is one metric's merged override.
type metricOverride struct {
	disabled *bool
	tags     map[string]*tpb.MetricsOverrides_TagOverride
}

// providerMetrics is one provider's merged overrides by mode and metric,
// and the modes where every metric is disabled.
type providerMetrics struct {
	modes       map[tpb.WorkloadMode]map[string]*metricOverride
	disabledAll map[tpb.WorkloadMode]bool
}

// Metrics is the metrics of p from Telemetry resources and MeshConfig
// defaultProviders.metrics (Istio's mergeMetrics); nil when no
// prometheus provider applies. Istio generates one stats filter per
// provider; sluice's proxy records one set of Istio metrics, so when
// several prometheus providers apply the first by name is used.
func (pc *PushContext) Metrics(p *Proxy) *MetricsConfig {
	a := pc.applicableTelemetries(p)
	merged := mergeMetrics(a.metrics, pc.Mesh.GetDefaultProviders().GetMetrics())
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		prov := pc.fetchProvider(name)
		if providerSection(prov) != sectionMetrics {
			continue
		}
		return merged[name].config(prov)
	}
	return nil
}

// mergeMetrics is Istio's mergeMetrics up to its normalized form: the
// providers in scope are the last Metrics entry's that names any (else
// the defaults); overrides apply in order, later ones over earlier.
func mergeMetrics(metrics []*tpb.Metrics, defaults []string) map[string]*providerMetrics {
	providers := map[string]*providerMetrics{}
	if len(metrics) == 0 {
		for _, d := range defaults {
			providers[d] = newProviderMetrics()
		}
		return providers
	}
	inScope := defaults
	for _, m := range metrics {
		if names := providerNames(m.GetProviders()); len(names) > 0 {
			inScope = names
		}
	}
	parent := defaults
	for _, m := range metrics {
		names := providerNames(m.GetProviders())
		if len(names) == 0 {
			names = parent
		}
		parent = names
		for _, name := range names {
			if !slices.Contains(inScope, name) {
				continue
			}
			if providers[name] == nil {
				providers[name] = newProviderMetrics()
			}
			for _, o := range m.GetOverrides() {
				providers[name].apply(o)
			}
		}
	}
	return providers
}

func newProviderMetrics() *providerMetrics {
	return &providerMetrics{modes: map[tpb.WorkloadMode]map[string]*metricOverride{}, disabledAll: map[tpb.WorkloadMode]bool{}}
}

// apply merges one override: disabling ALL_METRICS drops the mode's
// filter; anything else re-enables it and edits the metrics matched.
func (pm *providerMetrics) apply(o *tpb.MetricsOverrides) {
	modes := overrideModes(o.GetMatch().GetMode())
	if isAllMetrics(o.GetMatch()) && o.GetDisabled().GetValue() {
		for _, mode := range modes {
			pm.disabledAll[mode] = true
		}
		return
	}
	for _, mode := range modes {
		delete(pm.disabledAll, mode)
		if pm.modes[mode] == nil {
			pm.modes[mode] = map[string]*metricOverride{}
		}
		for _, metric := range metricMatches(o.GetMatch()) {
			mo := pm.modes[mode][metric]
			if mo == nil {
				mo = &metricOverride{}
				pm.modes[mode][metric] = mo
			}
			if o.Disabled != nil {
				d := o.GetDisabled().GetValue()
				mo.disabled = &d
			}
			for k, v := range o.GetTagOverrides() {
				if mo.tags == nil {
					mo.tags = map[string]*tpb.MetricsOverrides_TagOverride{}
				}
				mo.tags[k] = v
			}
		}
	}
}

// config is the contract's MetricsConfig of the merged overrides.
func (pm *providerMetrics) config(prov *meshv1alpha1.MeshConfig_ExtensionProvider) *MetricsConfig {
	mc := &MetricsConfig{Provider: prov}
	for _, mode := range []tpb.WorkloadMode{tpb.WorkloadMode_CLIENT, tpb.WorkloadMode_SERVER} {
		dst := &mc.ClientMetrics
		if mode == tpb.WorkloadMode_SERVER {
			dst = &mc.ServerMetrics
		}
		if pm.disabledAll[mode] {
			dst.Disabled = true
			continue
		}
		for _, metric := range slices.Sorted(maps.Keys(pm.modes[mode])) {
			mo := pm.modes[mode][metric]
			name := metric
			if n, ok := metricNames[metric]; ok {
				name = n
			}
			out := MetricsOverride{Name: name, Disabled: mo.disabled != nil && *mo.disabled}
			for _, tag := range slices.Sorted(maps.Keys(mo.tags)) {
				to := mo.tags[tag]
				if to.GetOperation() == tpb.MetricsOverrides_TagOverride_REMOVE {
					out.Tags = append(out.Tags, TagOverride{Name: tag, Remove: true})
				} else {
					out.Tags = append(out.Tags, TagOverride{Name: tag, Value: to.GetValue()})
				}
			}
			dst.Overrides = append(dst.Overrides, out)
		}
	}
	return mc
}

func overrideModes(mode tpb.WorkloadMode) []tpb.WorkloadMode {
	if mode == tpb.WorkloadMode_CLIENT || mode == tpb.WorkloadMode_SERVER {
		return []tpb.WorkloadMode{mode}
	}
	return []tpb.WorkloadMode{tpb.WorkloadMode_CLIENT, tpb.WorkloadMode_SERVER}
}

func isAllMetrics(m *tpb.MetricSelector) bool {
	switch mm := m.GetMetricMatch().(type) {
	case *tpb.MetricSelector_CustomMetric:
		return false
	case *tpb.MetricSelector_Metric:
		return mm.Metric == tpb.MetricSelector_ALL_METRICS
	}
	return true
}

func metricMatches(m *tpb.MetricSelector) []string {
	switch mm := m.GetMetricMatch().(type) {
	case *tpb.MetricSelector_CustomMetric:
		return []string{mm.CustomMetric}
	case *tpb.MetricSelector_Metric:
		if mm.Metric != tpb.MetricSelector_ALL_METRICS {
			return []string{mm.Metric.String()}
		}
	}
	return allMetrics
}
