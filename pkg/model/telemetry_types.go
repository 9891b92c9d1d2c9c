package model

import (
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	tpb "istio.io/api/telemetry/v1alpha1"
)

// The resolved Telemetry API configuration one proxy gets, as istiod's
// pilot/pkg/model/telemetry.go computes it (TracingConfig, TracingSpec,
// LoggingConfig). The Telemetry resolution (telemetry.go) fills these; the
// generators (pkg/xdsgen tracing, access logs, istio.stats) read them.

// TracingConfig is the tracing of one proxy: ClientSpec for outbound
// listeners and gateways, ServerSpec for inbound ones (Telemetry's
// match.mode CLIENT/SERVER).
type TracingConfig struct {
	ServerSpec TracingSpec
	ClientSpec TracingSpec
}

// TracingSpec is one direction's tracing (Istio's TracingSpec).
// Provider nil: no provider applies (nothing is reported, but the trace
// context is still propagated unless DisableContextPropagation).
type TracingSpec struct {
	Provider                     *meshv1alpha1.MeshConfig_ExtensionProvider
	Disabled                     bool
	RandomSamplingPercentage     *float64
	CustomTags                   map[string]*tpb.Tracing_CustomTag
	UseRequestIDForTraceSampling bool
	EnableIstioTags              bool
	DisableContextPropagation    bool
}

// LoggingConfig is one access log provider in effect for a proxy and
// listener class (Istio's LoggingConfig, without the pre-built Envoy
// AccessLog: the generator builds it from Provider).
type LoggingConfig struct {
	Disabled bool
	Provider *meshv1alpha1.MeshConfig_ExtensionProvider
	Filter   *tpb.AccessLogging_Filter
}

// MetricsConfig is the metrics of one proxy (Istio's metricsConfig):
// ClientMetrics for outbound listeners and gateways, ServerMetrics for
// inbound ones. Provider is the metrics provider in effect (prometheus);
// nil: no provider applies and no stats filter is generated.
type MetricsConfig struct {
	Provider      *meshv1alpha1.MeshConfig_ExtensionProvider
	ClientMetrics MetricConfig
	ServerMetrics MetricConfig
}

// MetricConfig is one direction's metrics: Disabled leaves the stats
// filter out; Overrides edit single metrics, in order.
type MetricConfig struct {
	Disabled  bool
	Overrides []MetricsOverride
}

// MetricsOverride is one Telemetry metrics override resolved to one
// metric (Istio's metricsOverride): Name is the Istio stats name without
// the istio_ prefix (requests_total, request_duration_milliseconds, ...).
type MetricsOverride struct {
	Name     string
	Disabled bool
	Tags     []TagOverride
}

// TagOverride removes a label (Remove) or sets it to an expression's value.
type TagOverride struct {
	Name   string
	Remove bool
	Value  string
}

// ListenerClass is which of a proxy's listeners a setting is for (Istio's
// networking.ListenerClass): it picks the CLIENT or SERVER mode of a
// Telemetry match.
type ListenerClass int

const (
	ListenerClassSidecarOutbound ListenerClass = iota
	ListenerClassSidecarInbound
	ListenerClassGateway
)
