package meshconfig

import (
	"fmt"
	"net"
	"strconv"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// checkTracing refuses, when the mesh config is loaded, the tracing
// settings the proxies cannot honour, naming the field:
// defaultConfig.tracing (Istio's legacy tracer, which the agent's
// bootstrap would configure: only zipkin, over plaintext) and the
// zipkin and opentelemetry extension providers' options sluice's proxy
// does not implement (the Dynatrace sampler and resource detector, the
// OTel semantic-conventions service attributes).
func checkTracing(mc *meshv1alpha1.MeshConfig) error {
	if err := checkProxyTracing(mc.GetDefaultConfig().GetTracing()); err != nil {
		return fmt.Errorf("defaultConfig.tracing: %w", err)
	}
	for i, p := range mc.GetExtensionProviders() {
		if err := checkTracingProvider(p); err != nil {
			return fmt.Errorf("extensionProviders[%d] (%s): %w", i, p.GetName(), err)
		}
	}
	return nil
}

func checkProxyTracing(t *meshv1alpha1.Tracing) error {
	if t == nil {
		return nil
	}
	if t.GetTlsSettings() != nil {
		return fmt.Errorf("tlsSettings: not supported (spans go to the collector in plaintext)")
	}
	// istiod reads a sampling over 100 as 1 (proxyConfigSamplingValue);
	// a negative one would be an invalid Envoy percentage.
	if s := t.GetSampling(); s < 0 {
		return fmt.Errorf("sampling %v: must not be negative", s)
	}
	switch tr := t.GetTracer().(type) {
	case nil:
	case *meshv1alpha1.Tracing_Zipkin_:
		addr := tr.Zipkin.GetAddress()
		if addr == "" {
			return nil
		}
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || n == 0 {
			return fmt.Errorf("zipkin.address %q: want host:port (the host a service, such as zipkin.istio-system:9411)", addr)
		}
	default:
		return fmt.Errorf("%T: not supported (sluice reports to zipkin; or use extensionProviders zipkin/opentelemetry with a Telemetry)", tr)
	}
	return nil
}

func checkTracingProvider(p *meshv1alpha1.MeshConfig_ExtensionProvider) error {
	o := p.GetOpentelemetry()
	if o == nil {
		return nil
	}
	if o.GetDynatraceSampler() != nil {
		return fmt.Errorf("opentelemetry.dynatraceSampler: not supported")
	}
	if o.GetResourceDetectors().GetDynatrace() != nil {
		return fmt.Errorf("opentelemetry.resourceDetectors.dynatrace: not supported (environment only)")
	}
	if o.GetServiceAttributeEnrichment() == meshv1alpha1.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS {
		return fmt.Errorf("opentelemetry.serviceAttributeEnrichment OTEL_SEMANTIC_CONVENTIONS: not supported")
	}
	return nil
}
