package meshconfig

import (
	"errors"
	"fmt"
	"net"
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
)

// Istio's built-in extension providers (DefaultMeshConfig in
// istio/istio pkg/config/mesh/mesh.go), the ones sluice implements:
// "prometheus" for metrics and "envoy", the file access log to the
// proxy's standard output. Istio's third, "stackdriver", is not provided:
// sluice has no Stackdriver exporter.
const (
	PrometheusProvider = "prometheus"
	EnvoyProvider      = "envoy"
)

func builtinProviders() []*meshv1alpha1.MeshConfig_ExtensionProvider {
	return []*meshv1alpha1.MeshConfig_ExtensionProvider{
		{Name: PrometheusProvider, Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus{
			Prometheus: &meshv1alpha1.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}}},
		{Name: EnvoyProvider, Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
			EnvoyFileAccessLog: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"}}},
	}
}

// mergeProviders puts the file's extensionProviders over the built-in
// ones as istiod's ApplyMeshConfig does: a provider with a built-in's name
// replaces its definition, the others are appended in order.
func mergeProviders(mc *meshv1alpha1.MeshConfig) {
	out := builtinProviders()
	for _, p := range mc.GetExtensionProviders() {
		found := false
		for _, b := range out {
			if b.Name == p.GetName() {
				b.Provider = p.GetProvider()
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	mc.ExtensionProviders = out
}

// providerKind is the JSON name of the provider's type ("zipkin",
// "envoyFileAccessLog", ...), as users write it.
func providerKind(p *meshv1alpha1.MeshConfig_ExtensionProvider) string {
	m := p.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("provider"))
	if fd == nil {
		return ""
	}
	return fd.JSONName()
}

// checkProviders checks extensionProviders as istiod's
// validateExtensionProvider (pkg/config/validation/agent/extensionprovider.go)
// does, and refuses the provider types sluice does not implement, naming
// the provider: prometheus, zipkin, opentelemetry and envoyFileAccessLog
// are implemented.
func checkProviders(mc *meshv1alpha1.MeshConfig) error {
	var errs []error
	seen := map[string]bool{}
	for i, p := range mc.GetExtensionProviders() {
		field := fmt.Sprintf("extensionProviders[%d] (%q)", i, p.GetName())
		if err := checkProvider(p, seen); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	return errors.Join(errs...)
}

func checkProvider(p *meshv1alpha1.MeshConfig_ExtensionProvider, seen map[string]bool) error {
	switch {
	case p.GetName() == "":
		return errors.New("empty extension provider name")
	case seen[p.GetName()]:
		return fmt.Errorf("duplicate extension provider name %s", p.GetName())
	}
	seen[p.GetName()] = true
	switch prov := p.GetProvider().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus:
		return nil
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog:
		return checkFileAccessLog(prov.EnvoyFileAccessLog)
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin:
		return checkService(prov.Zipkin.GetService(), prov.Zipkin.GetPort(), "zipkin")
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry:
		o := prov.Opentelemetry
		if o.GetGrpc() != nil && o.GetHttp() != nil {
			return errors.New("opentelemetry: cannot specify both grpc and http")
		}
		return checkService(o.GetService(), o.GetPort(), "opentelemetry")
	case nil:
		return errors.New("no provider type set")
	}
	return fmt.Errorf("%s providers are not supported by sluice (supported: prometheus, zipkin, opentelemetry, envoyFileAccessLog)",
		providerKind(p))
}

// checkService is istiod's validateExtensionProviderService and port
// check: an FQDN, an IP, or "namespace/host".
func checkService(svc string, port uint32, kind string) error {
	var errs []error
	switch {
	case svc == "":
		errs = append(errs, fmt.Errorf("%s.service: must not be empty", kind))
	case strings.Contains(svc, "/"):
		ns, host, _ := strings.Cut(svc, "/")
		if ns != "*" && ns != "." && len(k8svalidation.IsDNS1123Label(ns)) > 0 || len(k8svalidation.IsDNS1123Subdomain(host)) > 0 {
			errs = append(errs, fmt.Errorf("%s.service: invalid namespace/host %q", kind, svc))
		}
	case net.ParseIP(svc) == nil && len(k8svalidation.IsDNS1123Subdomain(svc)) > 0:
		errs = append(errs, fmt.Errorf("%s.service: invalid service fmt %s: neither a hostname nor an IP address", kind, svc))
	}
	if port == 0 || port > 65535 {
		errs = append(errs, fmt.Errorf("%s.port: invalid service port: port number %d must be in the range 1..65535", kind, port))
	}
	return errors.Join(errs...)
}

// checkFileAccessLog compiles the provider's format as the proxies will,
// so a format they would NACK is refused here. omitEmptyValues is not
// implemented by the proxy's formatter and is refused.
func checkFileAccessLog(f *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider) error {
	if f.GetPath() == "" {
		return errors.New("envoyFileAccessLog.path: must not be empty")
	}
	if f.GetOmitEmptyValues() {
		return errors.New("envoyFileAccessLog.omitEmptyValues: not supported by sluice's access logger")
	}
	switch lf := f.GetLogFormat().GetLogFormat().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Text:
		if err := accesslog.CheckFormat(lf.Text); err != nil {
			return fmt.Errorf("envoyFileAccessLog.logFormat.text: %w", err)
		}
	case *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Labels:
		if len(lf.Labels.GetFields()) == 0 {
			return nil
		}
		if err := accesslog.CheckJSONFormat(lf.Labels); err != nil {
			return fmt.Errorf("envoyFileAccessLog.logFormat.labels: %w", err)
		}
	}
	return nil
}

// providerSections are the provider types each defaultProviders list may
// name.
var providerSections = map[string]map[string]bool{
	"tracing":       {"zipkin": true, "opentelemetry": true},
	"metrics":       {"prometheus": true},
	"accessLogging": {"envoyFileAccessLog": true},
}

// checkDefaultProviders: every name in defaultProviders must be an
// extension provider of that section's kind. istiod skips an unknown name
// silently; sluice refuses it.
func checkDefaultProviders(mc *meshv1alpha1.MeshConfig) error {
	dp := mc.GetDefaultProviders()
	var errs []error
	for _, sec := range []struct {
		name  string
		names []string
	}{{"tracing", dp.GetTracing()}, {"metrics", dp.GetMetrics()}, {"accessLogging", dp.GetAccessLogging()}} {
		for i, name := range sec.names {
			p := findProvider(mc, name)
			switch {
			case p == nil:
				errs = append(errs, fmt.Errorf("defaultProviders.%s[%d]: provider %q is not defined in extensionProviders", sec.name, i, name))
			case !providerSections[sec.name][providerKind(p)]:
				errs = append(errs, fmt.Errorf("defaultProviders.%s[%d]: provider %q is a %s provider, not one for %s",
					sec.name, i, name, providerKind(p), sec.name))
			}
		}
	}
	return errors.Join(errs...)
}

// findProvider is istiod's fetchProvider: case-insensitive by name.
func findProvider(mc *meshv1alpha1.MeshConfig, name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	for _, p := range mc.GetExtensionProviders() {
		if strings.EqualFold(p.GetName(), name) {
			return p
		}
	}
	return nil
}

// WithTelemetryDefaults gives a mesh config built in code (tests, tools)
// what loading one from a file gives it: the built-in providers, and
// defaultProviders.metrics [prometheus] when it names no default
// providers. It returns mc.
func WithTelemetryDefaults(mc *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig {
	if mc.DefaultProviders == nil {
		mc.DefaultProviders = defaultProviders()
	}
	mergeProviders(mc)
	return mc
}
