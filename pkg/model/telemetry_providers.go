package model

import (
	"fmt"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// section is which Telemetry section an extension provider serves.
type section int

const (
	sectionNone section = iota
	sectionTracing
	sectionMetrics
	sectionLogging
)

func (s section) String() string {
	return [...]string{"no Telemetry section", "tracing", "metrics", "accessLogging"}[s]
}

// providerSection is the section a provider's type serves (Istio's
// telemetryAccessLog, buildHTTPTelemetryFilter and the tracing builder
// each take only their own types; pkg/meshconfig refuses the types sluice
// does not implement).
func providerSection(p *meshv1alpha1.MeshConfig_ExtensionProvider) section {
	switch p.GetProvider().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin, *meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry,
		*meshv1alpha1.MeshConfig_ExtensionProvider_Datadog, *meshv1alpha1.MeshConfig_ExtensionProvider_Lightstep,
		*meshv1alpha1.MeshConfig_ExtensionProvider_Skywalking, *meshv1alpha1.MeshConfig_ExtensionProvider_Opencensus:
		return sectionTracing
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus:
		return sectionMetrics
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog:
		return sectionLogging
	}
	return sectionNone
}

// checkTelemetryProviders reports each provider reference of t that this
// push's MeshConfig cannot serve.
func (pc *PushContext) checkTelemetryProviders(t *Telemetry) config.Errors {
	var errs config.Errors
	check := func(field string, want section, name string) {
		p := pc.fetchProvider(name)
		var err error
		switch {
		case p == nil:
			err = fmt.Errorf("provider %q is not defined in MeshConfig extensionProviders (defined: %s); it is skipped, as istiod skips it",
				name, strings.Join(pc.providerList(), ", "))
		case providerSection(p) != want:
			err = fmt.Errorf("provider %q is a %s provider, not one for %s; it is skipped, as istiod skips it",
				name, providerSection(p), want)
		}
		if err != nil {
			errs = append(errs, &config.Error{Source: t.Source, Key: t.Key(), Field: field, Err: err})
		}
	}
	for i, tr := range t.Spec.GetTracing() {
		for j, name := range providerNames(tr.GetProviders()) {
			check(fmt.Sprintf("spec.tracing[%d].providers[%d].name", i, j), sectionTracing, name)
		}
	}
	for i, m := range t.Spec.GetMetrics() {
		for j, name := range providerNames(m.GetProviders()) {
			check(fmt.Sprintf("spec.metrics[%d].providers[%d].name", i, j), sectionMetrics, name)
		}
	}
	for i, l := range t.Spec.GetAccessLogging() {
		for j, name := range providerNames(l.GetProviders()) {
			check(fmt.Sprintf("spec.accessLogging[%d].providers[%d].name", i, j), sectionLogging, name)
		}
	}
	return errs
}

func (pc *PushContext) providerList() []string {
	var out []string
	for _, p := range pc.Mesh.GetExtensionProviders() {
		out = append(out, p.GetName())
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
