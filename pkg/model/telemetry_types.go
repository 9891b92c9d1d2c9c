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
