package model

// The Telemetry API resolution: which Telemetry resources apply to a proxy
// and what they add up to, as istiod's pilot/pkg/model/telemetry.go.
//
// In progress (issue 9): the bodies below are filled by the Telemetry
// resolution; until then no Telemetry applies, and telemetry.istio.io
// Telemetry is listed as not enforced (pkg/config/notenforced.go).

// Tracing is the tracing of p from Telemetry resources and MeshConfig
// defaultProviders.tracing; nil when neither names any (the generators
// then fall back to MeshConfig enableTracing and defaultConfig.tracing,
// as Istio does).
func (pc *PushContext) Tracing(p *Proxy) *TracingConfig { return nil }

// AccessLogging is the access logging of p's listeners of class from
// Telemetry resources and MeshConfig defaultProviders.accessLogging; nil
// when neither names any (the generators then fall back to MeshConfig
// accessLogFile).
func (pc *PushContext) AccessLogging(p *Proxy, class ListenerClass) []LoggingConfig { return nil }

// Metrics is the metrics of p from Telemetry resources and MeshConfig
// defaultProviders.metrics; nil when none applies.
func (pc *PushContext) Metrics(p *Proxy) *MetricsConfig { return nil }
