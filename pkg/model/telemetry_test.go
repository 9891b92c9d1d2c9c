package model

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// telemetryMesh has the providers of istiod's telemetry tests
// (createTestTelemetries): envoy and envoy-json file loggers, prometheus,
// stackdriver, and two tracers.
func telemetryMesh() *meshv1alpha1.MeshConfig {
	file := func(name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
		return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: name, Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
			EnvoyFileAccessLog: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"}}}
	}
	return &meshv1alpha1.MeshConfig{
		RootNamespace:    "istio-system",
		DefaultProviders: &meshv1alpha1.MeshConfig_DefaultProviders{},
		ExtensionProviders: []*meshv1alpha1.MeshConfig_ExtensionProvider{
			file("envoy"), file("envoy-json"),
			{Name: "prometheus", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus{
				Prometheus: &meshv1alpha1.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{}}},
			{Name: "stackdriver", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Stackdriver{
				Stackdriver: &meshv1alpha1.MeshConfig_ExtensionProvider_StackdriverProvider{}}},
			{Name: "zipkin", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin{
				Zipkin: &meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider{Service: "zipkin.istio-system.svc.cluster.local", Port: 9411}}},
			{Name: "otel", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry{
				Opentelemetry: &meshv1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{Service: "otel.istio-system.svc.cluster.local", Port: 4317}}},
		},
	}
}

var telCount int

// tel is a Telemetry document in ns with spec (YAML, indented two
// spaces); each is newer than the previous, as istiod orders them.
func tel(ns, spec string) string {
	telCount++
	return fmt.Sprintf("---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t%d, namespace: %s, creationTimestamp: \"2024-01-01T00:00:%02dZ\"}\nspec:\n%s\n",
		telCount, ns, telCount%60, spec)
}

func telemetryPush(t *testing.T, mesh *meshv1alpha1.MeshConfig, docs ...string) *PushContext {
	t.Helper()
	return NewPushContext(PushOptions{Mesh: mesh, Resources: decode(t, strings.Join(docs, ""))})
}

var (
	sidecarProxy = &Proxy{Type: Sidecar, Namespace: "default", Labels: map[string]string{"app": "test"}}
	gatewayProxy = &Proxy{Type: Router, Namespace: "default", Labels: map[string]string{gatewayapi.GatewayNameLabel: "gw"}}
)

// The access logging specs of istiod's TestAccessLogging
// (pilot/pkg/model/telemetry_logging_test.go).
const (
	alPrometheus      = "  metrics: [{providers: [{name: envoy}]}]"
	alEnvoy           = "  accessLogging: [{providers: [{name: envoy}]}]"
	alClient          = "  accessLogging: [{match: {mode: CLIENT}, providers: [{name: envoy}]}]"
	alClientDisabled  = "  accessLogging: [{match: {mode: CLIENT}, providers: [{name: envoy}], disabled: true}]"
	alTargetRefClient = "  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n" + alClient
	alSidecarClient   = "  selector: {matchLabels: {app: test}}\n" + alClient
	alServer          = "  accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}]}]"
	alServerDisabled  = "  accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}], disabled: true}]"
	alServerAndClient = "  accessLogging: [{match: {mode: CLIENT_AND_SERVER}, providers: [{name: envoy}]}]"
	alStackdriver     = "  accessLogging: [{providers: [{name: stackdriver}]}]"
	alEmpty           = "  accessLogging: [{}]"
	alDefaultJSON     = "  accessLogging: [{providers: [{name: envoy-json}]}]"
	alDisabled        = "  accessLogging: [{disabled: true}]"
	alNonExistent     = "  accessLogging: [{providers: [{name: custom-provider}]}]"
	alMulti           = "  accessLogging: [{providers: [{name: envoy}]}, {providers: [{name: envoy-json}]}]"
	alMultiDisabled   = "  accessLogging: [{providers: [{name: envoy}]}, {providers: [{name: envoy-json}], disabled: true}]"
	alMultiProviders  = "  accessLogging: [{providers: [{name: envoy}, {name: envoy-json}]}, {providers: [{name: envoy}]}]"
	alMultiFilters    = `  accessLogging:
  - {match: {mode: SERVER}, providers: [{name: envoy}], filter: {expression: response.code >= 400}}
  - {match: {mode: CLIENT_AND_SERVER}, providers: [{name: envoy}], filter: {expression: response.code >= 500}}`
	alMultiFiltersDisabled = `  accessLogging:
  - {match: {mode: SERVER}, providers: [{name: envoy}], filter: {expression: response.code >= 400}}
  - {match: {mode: CLIENT_AND_SERVER}, providers: [{name: envoy}], disabled: true}`
	alDifferent = "  accessLogging: [{match: {mode: SERVER}, providers: [{name: envoy}]}, {match: {mode: CLIENT}, providers: [{name: envoy-json}]}]"
)

// TestAccessLogging is istiod's TestAccessLogging table: the enabled
// providers per proxy and listener class (nil: fall back to MeshConfig).
func TestAccessLogging(t *testing.T) {
	out, in, gw := ListenerClassSidecarOutbound, ListenerClassSidecarInbound, ListenerClassGateway
	root, def := "istio-system", "default"
	cases := []struct {
		name     string
		docs     []string
		class    ListenerClass
		proxy    *Proxy
		defaults []string
		want     []string
	}{
		{"empty", nil, out, sidecarProxy, nil, nil},
		{"prometheus-mesh", []string{tel(root, alPrometheus)}, out, sidecarProxy, nil, nil},
		{"prometheus-namespace", []string{tel(def, alPrometheus)}, out, sidecarProxy, nil, nil},
		{"prometheus-workload", []string{tel(def, "  selector: {matchLabels: {app: test}}\n"+alPrometheus)}, out, sidecarProxy, nil, nil},
		{"default provider only", nil, out, sidecarProxy, []string{"envoy"}, []string{"envoy"}},
		{"provider only", []string{tel(root, alEnvoy)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"client - gateway", []string{tel(root, alClient)}, gw, sidecarProxy, nil, []string{"envoy"}},
		{"client - gateway defined by targetRef", []string{tel(def, alTargetRefClient)}, gw, gatewayProxy, nil, []string{"envoy"}},
		{"targetRef ignored by a sidecar", []string{tel(def, alTargetRefClient)}, out, sidecarProxy, nil, nil},
		{"client - outbound", []string{tel(root, alClient)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"client - inbound", []string{tel(root, alClient)}, in, sidecarProxy, nil, []string{}},
		{"client - disabled server", []string{tel(root, alClient), tel(def, alServerDisabled)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"client - disabled client", []string{tel(root, alClient), tel(def, alClientDisabled)}, out, sidecarProxy, nil, []string{}},
		{"client - disabled - enabled", []string{tel(root, alClient), tel(def, alClientDisabled), tel(def, alSidecarClient)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"server - gateway", []string{tel(root, alServer)}, gw, sidecarProxy, nil, []string{}},
		{"server - inbound", []string{tel(root, alServer)}, in, sidecarProxy, nil, []string{"envoy"}},
		{"server - outbound", []string{tel(root, alServer)}, out, sidecarProxy, nil, []string{}},
		{"server and client - gateway", []string{tel(root, alServerAndClient)}, gw, sidecarProxy, nil, []string{"envoy"}},
		{"server and client - inbound", []string{tel(root, alServerAndClient)}, in, sidecarProxy, nil, []string{"envoy"}},
		{"server and client - outbound", []string{tel(root, alServerAndClient)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"override default", []string{tel(root, alEnvoy)}, out, sidecarProxy, []string{"stackdriver"}, []string{"envoy"}},
		{"override namespace", []string{tel(root, alEnvoy), tel(def, alDefaultJSON)}, out, sidecarProxy, nil, []string{"envoy-json"}},
		{"empty config inherits", []string{tel(root, alEnvoy), tel(def, alEmpty)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"stackdriver", []string{tel(root, alEnvoy), tel(def, alStackdriver)}, out, sidecarProxy, nil, []string{}},
		{"default envoy JSON", []string{tel(root, alDefaultJSON)}, out, sidecarProxy, nil, []string{"envoy-json"}},
		{"disable config", []string{tel(root, alEnvoy), tel(def, alDisabled)}, out, sidecarProxy, nil, []string{}},
		{"disable default", []string{tel(def, alDisabled)}, out, sidecarProxy, []string{"envoy"}, []string{}},
		{"non existing", []string{tel(def, alNonExistent)}, out, sidecarProxy, []string{"envoy"}, []string{}},
		{"server - multi filters", []string{tel(root, alMultiFilters)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"server - multi filters disabled", []string{tel(root, alMultiFiltersDisabled)}, out, sidecarProxy, nil, []string{}},
		{"multi accesslogging", []string{tel(root, alEnvoy), tel(def, alMulti)}, out, sidecarProxy, nil, []string{"envoy", "envoy-json"}},
		{"multi accesslogging with disabled", []string{tel(root, alEnvoy), tel(def, alMultiDisabled)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"multi accesslogging - multi providers", []string{tel(root, alEnvoy), tel(def, alMultiProviders)}, out, sidecarProxy, nil, []string{"envoy", "envoy-json"}},
		{"server and client different - inbound", []string{tel(root, alDifferent)}, in, sidecarProxy, nil, []string{"envoy"}},
		{"server and client different - outbound", []string{tel(root, alDifferent)}, out, sidecarProxy, nil, []string{"envoy-json"}},
		// Only the oldest namespace-wide Telemetry of a namespace applies.
		{"newer namespace-wide ignored", []string{tel(def, alEnvoy), tel(def, alDisabled)}, out, sidecarProxy, nil, []string{"envoy"}},
		{"other namespace", []string{tel("other", alEnvoy)}, out, sidecarProxy, nil, nil},
		{"selector not matching", []string{tel(def, "  selector: {matchLabels: {app: nope}}\n"+alEnvoy)}, out, sidecarProxy, nil, nil},
		{"root namespace selector ignored", []string{tel(root, "  selector: {matchLabels: {app: test}}\n"+alEnvoy)}, out, sidecarProxy, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mesh := telemetryMesh()
			mesh.DefaultProviders.AccessLogging = c.defaults
			pc := telemetryPush(t, mesh, c.docs...)
			var got []string
			if cfgs := pc.AccessLogging(c.proxy, c.class); cfgs != nil {
				got = []string{}
				for _, l := range cfgs {
					if !l.Disabled {
						got = append(got, l.Provider.GetName())
					}
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %#v want %#v", got, c.want)
			}
		})
	}
}

// TestAccessLoggingFilter: istiod's TestAccessLoggingWithFilter shapes:
// the filter of the last matching entry is the provider's.
func TestAccessLoggingFilter(t *testing.T) {
	pc := telemetryPush(t, telemetryMesh(), tel("istio-system", alMultiFilters),
		tel("default", "  selector: {matchLabels: {app: test}}\n  accessLogging: [{providers: [{name: envoy}], filter: {expression: 'response.code >= 300'}}]"))
	check := func(class ListenerClass, want string) {
		t.Helper()
		cfgs := pc.AccessLogging(sidecarProxy, class)
		if len(cfgs) != 1 || cfgs[0].Disabled || cfgs[0].Filter.GetExpression() != want {
			t.Errorf("class %d: %+v, want filter %q", class, cfgs, want)
		}
	}
	check(ListenerClassSidecarInbound, "response.code >= 300")
	other := &Proxy{Type: Sidecar, Namespace: "default", Labels: map[string]string{"app": "other"}}
	cfgs := pc.AccessLogging(other, ListenerClassSidecarInbound)
	if len(cfgs) != 1 || cfgs[0].Filter.GetExpression() != "response.code >= 500" {
		t.Errorf("other workload: %+v", cfgs)
	}
}

// TestTelemetryProviderErrors: provider names MeshConfig does not define,
// or of the wrong kind for the section, are errors naming the field.
func TestTelemetryProviderErrors(t *testing.T) {
	pc := telemetryPush(t, telemetryMesh(), tel("default", alNonExistent),
		tel("default", "  selector: {matchLabels: {a: b}}\n  metrics: [{providers: [{name: envoy}]}]\n  tracing: [{providers: [{name: ZIPKIN}]}]"))
	errs := pc.TelemetryErrors()
	if len(errs) != 2 {
		t.Fatalf("errors: %v", errs)
	}
	if errs[0].Field != "spec.accessLogging[0].providers[0].name" || !strings.Contains(errs[0].Error(), `"custom-provider" is not defined`) ||
		!strings.Contains(errs[0].Error(), "Telemetry default/t") {
		t.Errorf("first: %v", errs[0])
	}
	if errs[1].Field != "spec.metrics[0].providers[0].name" || !strings.Contains(errs[1].Error(), "accessLogging provider, not one for metrics") {
		t.Errorf("second: %v", errs[1])
	}
}

// TestTracing is istiod's TestTracing (pilot/pkg/model/telemetry_test.go)
// in its main shapes.
func TestTracing(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	root, def := "istio-system", "default"
	zipkin, otel := "zipkin", "otel"
	type spec struct {
		provider string
		disabled bool
		sampling *float64
		reqID    bool
	}
	cases := []struct {
		name           string
		docs           []string
		defaults       []string
		client, server *spec
	}{
		{"empty", nil, nil, nil, nil},
		{"default provider only", nil, []string{zipkin}, &spec{provider: zipkin, reqID: true}, &spec{provider: zipkin, reqID: true}},
		{"provider only", []string{tel(root, "  tracing: [{providers: [{name: zipkin}]}]")}, nil,
			&spec{provider: zipkin, reqID: true}, &spec{provider: zipkin, reqID: true}},
		{"no provider: disabled", []string{tel(root, "  tracing: [{randomSamplingPercentage: 10}]")}, nil,
			&spec{disabled: true, sampling: f(10), reqID: true}, &spec{disabled: true, sampling: f(10), reqID: true}},
		{"override default", []string{tel(root, "  tracing: [{providers: [{name: otel}]}]")}, []string{zipkin},
			&spec{provider: otel, reqID: true}, &spec{provider: otel, reqID: true}},
		{"namespace overrides sampling", []string{tel(root, "  tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 1}]"),
			tel(def, "  tracing: [{randomSamplingPercentage: 50, useRequestIdForTraceSampling: false}]")}, nil,
			&spec{provider: zipkin, sampling: f(50)}, &spec{provider: zipkin, sampling: f(50)}},
		{"client only", []string{tel(root, "  tracing: [{match: {mode: CLIENT}, providers: [{name: zipkin}]}]")}, nil,
			&spec{provider: zipkin, reqID: true}, &spec{disabled: true, reqID: true}},
		{"server disabled by workload", []string{tel(root, "  tracing: [{providers: [{name: zipkin}]}]"),
			tel(def, "  selector: {matchLabels: {app: test}}\n  tracing: [{match: {mode: SERVER}, disableSpanReporting: true}]")}, nil,
			&spec{provider: zipkin, reqID: true}, &spec{provider: zipkin, disabled: true, reqID: true}},
		{"unknown provider: disabled", []string{tel(root, "  tracing: [{providers: [{name: nope}]}]")}, nil,
			&spec{disabled: true, reqID: true}, &spec{disabled: true, reqID: true}},
		{"non-tracing provider: disabled", []string{tel(root, "  tracing: [{providers: [{name: envoy}]}]")}, nil,
			&spec{disabled: true, reqID: true}, &spec{disabled: true, reqID: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mesh := telemetryMesh()
			mesh.DefaultProviders.Tracing = c.defaults
			got := telemetryPush(t, mesh, c.docs...).Tracing(sidecarProxy)
			if c.client == nil {
				if got != nil {
					t.Fatalf("got %+v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatal("got nil")
			}
			for _, d := range []struct {
				name string
				got  TracingSpec
				want *spec
			}{{"client", got.ClientSpec, c.client}, {"server", got.ServerSpec, c.server}} {
				g := spec{provider: d.got.Provider.GetName(), disabled: d.got.Disabled, sampling: d.got.RandomSamplingPercentage,
					reqID: d.got.UseRequestIDForTraceSampling}
				if !reflect.DeepEqual(g, *d.want) || !d.got.EnableIstioTags {
					t.Errorf("%s: got %+v (sampling %v), want %+v", d.name, g, ptrVal(g.sampling), *d.want)
				}
			}
		})
	}
}

func ptrVal(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestTracingCustomTags(t *testing.T) {
	pc := telemetryPush(t, telemetryMesh(),
		tel("istio-system", "  tracing: [{providers: [{name: zipkin}], customTags: {a: {literal: {value: x}}, b: {literal: {value: why}}}}]"),
		tel("default", "  tracing: [{customTags: {c: {header: {name: x-c}}}, enableIstioTags: false, disableContextPropagation: true}]"))
	got := pc.Tracing(sidecarProxy).ClientSpec
	if len(got.CustomTags) != 1 || got.CustomTags["c"].GetHeader().GetName() != "x-c" || got.EnableIstioTags || !got.DisableContextPropagation {
		t.Errorf("custom tags replace (shallow merge): %+v", got)
	}
}

// TestMetrics: istiod's mergeMetrics (TestTelemetryFilters shapes).
func TestMetrics(t *testing.T) {
	root, def := "istio-system", "default"
	cases := []struct {
		name     string
		docs     []string
		defaults []string
		want     string // "nil" or client|server, each "disabled" or overrides
	}{
		{"nothing", nil, nil, "nil"},
		{"default prometheus", nil, []string{"prometheus"}, "prometheus client[] server[]"},
		{"telemetry provider", []string{tel(root, "  metrics: [{providers: [{name: prometheus}]}]")}, nil, "prometheus client[] server[]"},
		{"disable all", []string{tel(root, "  metrics: [{overrides: [{disabled: true}]}]")}, []string{"prometheus"},
			"prometheus client=disabled server=disabled"},
		{"disable all client", []string{tel(root, "  metrics: [{overrides: [{match: {metric: ALL_METRICS, mode: CLIENT}, disabled: true}]}]")},
			[]string{"prometheus"}, "prometheus client=disabled server[]"},
		{"root disables, namespace enables", []string{tel(root, "  metrics: [{overrides: [{disabled: true}]}]"),
			tel(def, "  metrics: [{overrides: [{match: {metric: REQUEST_COUNT}, disabled: false}]}]")}, []string{"prometheus"},
			"prometheus client[requests_total:false] server[requests_total:false]"},
		{"tags", []string{tel(root, `  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides: {request_host: {value: request.host}, destination_port: {operation: REMOVE}}
    - match: {customMetric: my_metric}
      disabled: true`)}, []string{"prometheus"},
			"prometheus client[my_metric:true] server[requests_total:false(destination_port=- request_host=request.host) my_metric:true]"},
		{"non-prometheus provider", []string{tel(root, "  metrics: [{providers: [{name: stackdriver}]}]")}, []string{"prometheus"}, "nil"},
		{"provider replaced, overrides kept per provider", []string{tel(root, "  metrics: [{overrides: [{match: {metric: REQUEST_SIZE}, disabled: true}]}]"),
			tel(def, "  metrics: [{providers: [{name: prometheus}]}]")}, []string{"prometheus"}, "prometheus client[request_bytes:true] server[request_bytes:true]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mesh := telemetryMesh()
			mesh.DefaultProviders.Metrics = c.defaults
			if got := metricsString(telemetryPush(t, mesh, c.docs...).Metrics(sidecarProxy)); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func metricsString(m *MetricsConfig) string {
	if m == nil {
		return "nil"
	}
	side := func(name string, mc MetricConfig) string {
		if mc.Disabled {
			return name + "=disabled"
		}
		var parts []string
		for _, o := range mc.Overrides {
			s := fmt.Sprintf("%s:%v", o.Name, o.Disabled)
			var tags []string
			for _, tg := range o.Tags {
				v := tg.Value
				if tg.Remove {
					v = "-"
				}
				tags = append(tags, tg.Name+"="+v)
			}
			if len(tags) > 0 {
				s += "(" + strings.Join(tags, " ") + ")"
			}
			parts = append(parts, s)
		}
		return name + "[" + strings.Join(parts, " ") + "]"
	}
	return m.Provider.GetName() + " " + side("client", m.ClientMetrics) + " " + side("server", m.ServerMetrics)
}

// TestAccessLoggingConformanceVariants: the Telemetry resources of
// ../shared/conformance/istio-telemetry/access-log-telemetry-filters
// (Istio's "Configure access logs with Telemetry API" task) resolve, for
// sleep's outbound and httpbin's inbound listeners, to what the task
// says each proxy logs. Entries are "provider" or "provider:filter";
// "off" is a disabled provider, "" none.
func TestAccessLoggingConformanceVariants(t *testing.T) {
	const dir = "../../../shared/conformance/istio-telemetry/access-log-telemetry-filters/"
	exception := "response.code >= 400 || xds.cluster_name == 'BlackHoleCluster' ||  xds.cluster_name == 'PassthroughCluster' "
	health := `!has(request.useragent) || !(request.useragent.startsWith("Amazon-Route53-Health-Check-Service"))`
	cases := map[string]struct{ sleep, httpbin string }{
		"variant-mesh-logging-default.yaml":        {"envoy", "envoy"},
		"variant-disable-sleep-logging.yaml":       {"off", "envoy"},
		"variant-disable-httpbin-logging.yaml":     {"envoy", "off"},
		"variant-filter-sleep-logging.yaml":        {"envoy:response.code >= 500", "envoy"},
		"variant-default-exception-logging.yaml":   {"envoy:" + exception, "envoy:" + exception},
		"variant-filter-health-check-logging.yaml": {"envoy:" + health, "envoy:" + health},
	}
	sleep := &Proxy{Type: Sidecar, Namespace: "default", Labels: map[string]string{"app": "sleep"}}
	httpbin := &Proxy{Type: Sidecar, Namespace: "default", Labels: map[string]string{"app": "httpbin", "version": "v1"}}
	describe := func(cfgs []LoggingConfig) string {
		var out []string
		for _, c := range cfgs {
			switch {
			case c.Disabled:
				out = append(out, "off")
			case c.Filter != nil:
				out = append(out, c.Provider.GetName()+":"+c.Filter.GetExpression())
			default:
				out = append(out, c.Provider.GetName())
			}
		}
		return strings.Join(out, ",")
	}
	for file, want := range cases {
		data, err := os.ReadFile(dir + file)
		if os.IsNotExist(err) {
			t.Skip("conformance cases not found next to the worktree")
		}
		if err != nil {
			t.Fatal(err)
		}
		pc := NewPushContext(PushOptions{Mesh: meshconfig.Default(), Resources: decode(t, string(data))})
		if len(pc.TelemetryErrors()) > 0 {
			t.Errorf("%s: %v", file, pc.TelemetryErrors())
		}
		if got := describe(pc.AccessLogging(sleep, ListenerClassSidecarOutbound)); got != want.sleep {
			t.Errorf("%s: sleep outbound %q, want %q", file, got, want.sleep)
		}
		if got := describe(pc.AccessLogging(httpbin, ListenerClassSidecarInbound)); got != want.httpbin {
			t.Errorf("%s: httpbin inbound %q, want %q", file, got, want.httpbin)
		}
	}
}
