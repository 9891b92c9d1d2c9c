package meshconfig

import (
	"strings"
	"testing"
)

// TestDefaultProviders: without defaultProviders, metrics go to Istio's
// built-in prometheus provider, as an Istio install's istiod ConfigMap
// sets; "prometheus" and "envoy" (file log to /dev/stdout) are defined.
func TestDefaultProviders(t *testing.T) {
	mc := Default()
	if got := mc.GetDefaultProviders().GetMetrics(); len(got) != 1 || got[0] != "prometheus" {
		t.Errorf("default metrics providers: %v", got)
	}
	if p := findProvider(mc, "envoy"); p.GetEnvoyFileAccessLog().GetPath() != "/dev/stdout" {
		t.Errorf("envoy provider: %v", p)
	}
	if findProvider(mc, "prometheus").GetPrometheus() == nil {
		t.Error("no prometheus provider")
	}
	parsed, err := Parse([]byte("rootNamespace: istio-system\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.GetDefaultProviders().GetMetrics(); len(got) != 1 || got[0] != "prometheus" {
		t.Errorf("parsed default metrics providers: %v", got)
	}
	// Setting defaultProviders replaces the install's default.
	parsed, err = Parse([]byte("defaultProviders: {accessLogging: [envoy]}\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if dp := parsed.GetDefaultProviders(); len(dp.GetMetrics()) != 0 || len(dp.GetAccessLogging()) != 1 {
		t.Errorf("given defaultProviders: %v", dp)
	}
	// A file's provider named like a built-in replaces its definition.
	parsed, err = Parse([]byte(`extensionProviders:
- name: envoy
  envoyFileAccessLog: {path: /tmp/a.log, logFormat: {labels: {code: "%RESPONSE_CODE%"}}}
`), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.ExtensionProviders) != 2 || findProvider(parsed, "envoy").GetEnvoyFileAccessLog().GetPath() != "/tmp/a.log" {
		t.Errorf("providers: %v", parsed.ExtensionProviders)
	}
}

func TestProvidersAccepted(t *testing.T) {
	const doc = `extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
- name: otel
  opentelemetry: {service: observability/otel-collector.observability.svc.cluster.local, port: 4317}
- name: otel-ip
  opentelemetry: {service: 10.0.0.1, port: 4318, http: {path: /v1/traces}}
- name: text-log
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {text: "%REQ(:METHOD)% %RESPONSE_CODE%"}}
- name: json-log
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {labels: {}}}
- name: prom2
  prometheus: {}
defaultProviders:
  tracing: [ZIPKIN]
  metrics: [prom2]
  accessLogging: [text-log, envoy]
`
	if _, err := Parse([]byte(doc), "m.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestProvidersRejected(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"stackdriver": {"extensionProviders: [{name: sd, stackdriver: {}}]",
			`extensionProviders[0] ("sd"): stackdriver providers are not supported`},
		"ext authz": {"extensionProviders: [{name: a, envoyExtAuthzHttp: {service: a.b.svc.cluster.local, port: 80}}]",
			`extensionProviders[0] ("a"): envoyExtAuthzHttp providers are not supported`},
		"skywalking": {"extensionProviders: [{name: s, skywalking: {service: a.b, port: 80}}]", "skywalking providers"},
		"datadog":    {"extensionProviders: [{name: s, datadog: {service: a.b, port: 80}}]", "datadog providers"},
		"http als":   {"extensionProviders: [{name: s, envoyHttpAls: {service: a.b, port: 80}}]", "envoyHttpAls providers"},
		"otel als":   {"extensionProviders: [{name: s, envoyOtelAls: {service: a.b, port: 80}}]", "envoyOtelAls providers"},
		"no type":    {"extensionProviders: [{name: s}]", "no provider type"},
		"no name":    {"extensionProviders: [{prometheus: {}}]", "empty extension provider name"},
		"duplicate":  {"extensionProviders: [{name: p, prometheus: {}}, {name: p, prometheus: {}}]", "duplicate extension provider name p"},
		"zipkin no service": {"extensionProviders: [{name: z, zipkin: {port: 9411}}]",
			"zipkin.service: must not be empty"},
		"zipkin bad port": {"extensionProviders: [{name: z, zipkin: {service: a.b, port: 0}}]", "zipkin.port"},
		"otel grpc and http": {"extensionProviders: [{name: o, opentelemetry: {service: a.b, port: 1, grpc: {}, http: {}}}]",
			"both grpc and http"},
		"bad service":  {"extensionProviders: [{name: z, zipkin: {service: 'not a host!', port: 1}}]", "invalid service"},
		"file no path": {"extensionProviders: [{name: f, envoyFileAccessLog: {}}]", "envoyFileAccessLog.path"},
		"file omit empty": {"extensionProviders: [{name: f, envoyFileAccessLog: {path: /a, omitEmptyValues: true}}]",
			"omitEmptyValues"},
		"file bad text": {"extensionProviders: [{name: f, envoyFileAccessLog: {path: /a, logFormat: {text: '%NOPE%'}}}]",
			"envoyFileAccessLog.logFormat.text"},
		"file bad labels": {"extensionProviders: [{name: f, envoyFileAccessLog: {path: /a, logFormat: {labels: {a: '%NOPE%'}}}}]",
			"envoyFileAccessLog.logFormat.labels"},
		"unknown default": {"defaultProviders: {tracing: [nope]}", `defaultProviders.tracing[0]: provider "nope" is not defined`},
		"wrong default kind": {"defaultProviders: {accessLogging: [prometheus]}",
			`defaultProviders.accessLogging[0]: provider "prometheus" is a prometheus provider, not one for accessLogging`},
	} {
		_, err := Parse([]byte(c.doc), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m.yaml") {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}
