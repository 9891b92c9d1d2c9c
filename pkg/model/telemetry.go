package model

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	tpb "istio.io/api/telemetry/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// The Telemetry API resolution: which Telemetry resources apply to a proxy
// and what they add up to, as istiod's pilot/pkg/model/telemetry.go
// (Telemetries: applicableTelemetries, Tracing, AccessLogging via
// mergeLogs, mergeMetrics). sluice runs no waypoints, so no
// service-attached Telemetry.

// Telemetry is a Telemetry resource with its spec.
type Telemetry struct {
	*config.Resource
	Spec *tpb.Telemetry
}

// telemetries indexes the Telemetry resources of one push.
type telemetries struct {
	// byNamespace holds each namespace's Telemetry, oldest first (Istio's
	// getTelemetries sorts by creation time).
	byNamespace map[string][]*Telemetry
	// errs are the provider references that name no usable MeshConfig
	// extension provider (TelemetryErrors).
	errs config.Errors
}

func (pc *PushContext) indexTelemetry(resources []*config.Resource) {
	pc.telemetry = &telemetries{byNamespace: map[string][]*Telemetry{}}
	var sorted []*config.Resource
	for _, r := range resources {
		if _, ok := r.Spec.(*tpb.Telemetry); ok {
			sorted = append(sorted, r)
		}
	}
	config.SortByCreation(sorted)
	for _, r := range sorted {
		if spec, ok := r.Spec.(*tpb.Telemetry); ok {
			t := &Telemetry{Resource: r, Spec: spec}
			pc.telemetry.byNamespace[r.Namespace] = append(pc.telemetry.byNamespace[r.Namespace], t)
			pc.telemetry.errs = append(pc.telemetry.errs, pc.checkTelemetryProviders(t)...)
		}
	}
}

// TelemetryErrors are the Telemetry provider references this push cannot
// honour: a name MeshConfig's extensionProviders does not define, or a
// provider of the wrong type for the section (a prometheus provider in
// accessLogging). istiod logs these at debug level and skips the provider;
// sluice skips it too, and the control plane reports each as an error
// naming the resource and field.
func (pc *PushContext) TelemetryErrors() config.Errors {
	if pc.telemetry == nil {
		return nil
	}
	return pc.telemetry.errs
}

// applicable is what applies to one proxy, each list in Istio's order:
// root namespace, then the proxy's namespace, then workload Telemetry
// (later entries override earlier ones). logging keeps one list per
// Telemetry, as mergeLogs inherits providers between levels.
type applicable struct {
	metrics []*tpb.Metrics
	logging [][]*tpb.AccessLogging
	tracing []*tpb.Tracing
}

func (a *applicable) add(t *Telemetry) {
	a.metrics = append(a.metrics, t.Spec.GetMetrics()...)
	if len(t.Spec.GetAccessLogging()) != 0 {
		a.logging = append(a.logging, t.Spec.GetAccessLogging())
	}
	a.tracing = append(a.tracing, t.Spec.GetTracing()...)
}

// applicableTelemetries is istiod's applicableTelemetries: the first
// (oldest) namespace-wide Telemetry of the root namespace, then of the
// proxy's namespace, then every Telemetry of the proxy's namespace that
// selects it (selector, or targetRefs for a Gateway API gateway).
func (pc *PushContext) applicableTelemetries(p *Proxy) applicable {
	var a applicable
	if pc.telemetry == nil || p == nil {
		return a
	}
	root := pc.RootNamespace()
	if t := pc.namespaceWideTelemetry(root); t != nil {
		a.add(t)
	}
	if p.Namespace != root {
		if t := pc.namespaceWideTelemetry(p.Namespace); t != nil {
			a.add(t)
		}
	}
	m := PolicyMatcherFor(p)
	for _, t := range pc.telemetry.byNamespace[p.Namespace] {
		if namespaceWide(t.Spec) {
			continue
		}
		if m.Attaches(t.Namespace, t.Spec) {
			a.add(t)
		}
	}
	return a
}

func namespaceWide(s *tpb.Telemetry) bool {
	return len(s.GetSelector().GetMatchLabels()) == 0 && len(s.GetTargetRefs()) == 0 && s.GetTargetRef() == nil
}

func (pc *PushContext) namespaceWideTelemetry(ns string) *Telemetry {
	for _, t := range pc.telemetry.byNamespace[ns] {
		if namespaceWide(t.Spec) {
			return t
		}
	}
	return nil
}

// fetchProvider finds a MeshConfig extension provider by name, case
// insensitively (Istio's fetchProvider); nil when none has the name.
func (pc *PushContext) fetchProvider(name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	for _, p := range pc.Mesh.GetExtensionProviders() {
		if strings.EqualFold(name, p.GetName()) {
			return p
		}
	}
	return nil
}

func providerNames(ps []*tpb.ProviderRef) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.GetName())
	}
	return out
}

// workloadMode is the Telemetry mode of a listener class (Istio's
// workloadMode): gateways and outbound listeners are clients.
func workloadMode(class ListenerClass) tpb.WorkloadMode {
	if class == ListenerClassSidecarInbound {
		return tpb.WorkloadMode_SERVER
	}
	return tpb.WorkloadMode_CLIENT
}

// Tracing is the tracing of p from Telemetry resources and MeshConfig
// defaultProviders.tracing (Istio's Telemetries.Tracing); nil when
// neither names any (the generators then fall back to MeshConfig
// enableTracing and defaultConfig.tracing, as Istio does). A direction
// whose provider is not found is Disabled.
func (pc *PushContext) Tracing(p *Proxy) *TracingConfig {
	a := pc.applicableTelemetries(p)
	defaults := pc.Mesh.GetDefaultProviders().GetTracing()
	if len(a.tracing) == 0 && len(defaults) == 0 {
		return nil
	}
	client := TracingSpec{UseRequestIDForTraceSampling: true, EnableIstioTags: true}
	server := TracingSpec{UseRequestIDForTraceSampling: true, EnableIstioTags: true}
	if len(defaults) > 0 {
		// Istio uses only the first default provider.
		client.Provider = pc.tracingProvider(defaults[0])
		server.Provider = client.Provider
	}
	for _, t := range a.tracing {
		specs := []*TracingSpec{&client, &server}
		switch t.GetMatch().GetMode() {
		case tpb.WorkloadMode_CLIENT:
			specs = specs[:1]
		case tpb.WorkloadMode_SERVER:
			specs = specs[1:]
		}
		for _, s := range specs {
			mergeTracing(s, t, pc)
		}
	}
	if client.Provider == nil {
		client.Disabled = true
	}
	if server.Provider == nil {
		server.Disabled = true
	}
	return &TracingConfig{ClientSpec: client, ServerSpec: server}
}

// mergeTracing applies one Tracing entry over s: set fields override,
// providers replace (only the first is used, as in Istio), custom tags
// replace the whole map (Istio's shallow merge).
func mergeTracing(s *TracingSpec, t *tpb.Tracing, pc *PushContext) {
	if names := providerNames(t.GetProviders()); len(names) > 0 {
		s.Provider = pc.tracingProvider(names[0])
	}
	if t.DisableSpanReporting != nil {
		s.Disabled = t.GetDisableSpanReporting().GetValue()
	}
	if t.CustomTags != nil {
		s.CustomTags = t.GetCustomTags()
	}
	if t.RandomSamplingPercentage != nil {
		v := t.GetRandomSamplingPercentage().GetValue()
		s.RandomSamplingPercentage = &v
	}
	if t.UseRequestIdForTraceSampling != nil {
		s.UseRequestIDForTraceSampling = t.GetUseRequestIdForTraceSampling().GetValue()
	}
	if t.EnableIstioTags != nil {
		s.EnableIstioTags = t.GetEnableIstioTags().GetValue()
	}
	if t.DisableContextPropagation != nil {
		s.DisableContextPropagation = t.GetDisableContextPropagation().GetValue()
	}
}

// tracingProvider is the provider named, when it is a tracing provider.
func (pc *PushContext) tracingProvider(name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	p := pc.fetchProvider(name)
	if providerSection(p) != sectionTracing {
		return nil
	}
	return p
}
