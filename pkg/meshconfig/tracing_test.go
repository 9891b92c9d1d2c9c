package meshconfig

import (
	"strings"
	"testing"
)

// TestTracingSettings: the conformance cases' tracing mesh configs load;
// what the proxies cannot honour is refused naming the field.
func TestTracingSettings(t *testing.T) {
	ok := []string{
		"defaultConfig:\n  tracing:\n    sampling: 10\n    custom_tags:\n      my_tag_header:\n        header:\n          name: host\n    zipkin:\n      address: zipkin.istio-system:9411\n",
		"enableTracing: true\ndefaultConfig:\n  tracing: {}\nextensionProviders:\n- name: zipkin\n  zipkin:\n    service: zipkin.istio-system.svc.cluster.local\n    port: 9411\n",
		"extensionProviders:\n- name: otel-tracing\n  opentelemetry:\n    port: 4317\n    service: opentelemetry-collector.observability.svc.cluster.local\n    resource_detectors:\n      environment: {}\n",
	}
	for _, doc := range ok {
		if _, err := Parse([]byte(doc), "mesh.yaml"); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
	bad := map[string]string{
		"defaultConfig:\n  tracing:\n    datadog:\n      address: dd:8126\n":                                                           "defaultConfig.tracing",
		"defaultConfig:\n  tracing:\n    zipkin:\n      address: zipkin\n":                                                             "zipkin.address",
		"defaultConfig:\n  tracing:\n    sampling: -1\n":                                                                               "sampling -1",
		"defaultConfig:\n  tracing:\n    tlsSettings: {mode: SIMPLE}\n":                                                                "tlsSettings",
		"extensionProviders:\n- name: o\n  opentelemetry:\n    service: c\n    port: 1\n    resourceDetectors:\n      dynatrace: {}\n": "extensionProviders[0] (o): opentelemetry.resourceDetectors.dynatrace",
	}
	for doc, want := range bad {
		if _, err := Parse([]byte(doc), "mesh.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one naming %q", doc, err, want)
		}
	}
}
