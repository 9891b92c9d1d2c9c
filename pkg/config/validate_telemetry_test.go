package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const telHead = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: foo}
spec:
`

// TestTelemetryValidation: the Telemetry forms Istio accepts are accepted;
// each Istio rejects, and each sluice does not implement, is an error
// naming file, resource and field.
func TestTelemetryValidation(t *testing.T) {
	good := map[string]string{
		"empty":                `  {}`,
		"access log mesh-wide": `  accessLogging: [{providers: [{name: envoy}]}]`,
		"disabled for a workload, SERVER": `  selector: {matchLabels: {app: httpbin}}
  accessLogging: [{providers: [{name: envoy}], match: {mode: SERVER}, disabled: true}]`,
		"filter":              `  accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400 || xds.cluster_name == 'BlackHoleCluster'"}}]`,
		"health check filter": `  accessLogging: [{filter: {expression: '!has(request.useragent) || !(request.useragent.startsWith("Amazon-Route53-Health-Check-Service"))'}}]`,
		"gateway targetRef": `  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  accessLogging: [{}]`,
		"tracing": `  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 100
    disableSpanReporting: false
    useRequestIdForTraceSampling: false
    match: {mode: CLIENT}
    customTags:
      lit: {literal: {value: x}}
      env: {environment: {name: POD, defaultValue: unknown}}
      hdr: {header: {name: x-user}}`,
		"metrics overrides": `  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        request_operation: {value: request.method}
        destination_canonical_service: {operation: REMOVE}
    - match: {customMetric: my_metric}
      disabled: true
    - disabled: true`,
	}
	for name, spec := range good {
		if errs := checkSecurity(t, telHead+spec); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	bad := map[string]struct{ spec, field, msg string }{
		"sampling kept in x-request-id": {`  tracing: [{providers: [{name: zipkin}], useRequestIdForTraceSampling: true}]`,
			"spec.tracing[0].useRequestIdForTraceSampling", "samples each request at random"},
		"selector and targetRefs": {`  selector: {matchLabels: {a: b}}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]`, "spec", "only one of"},
		"service targetRef (waypoint)": {`  targetRefs: [{kind: Service, name: s}]`, "spec.targetRefs[0]", "waypoint"},
		"targetRef to a Deployment":    {`  targetRef: {group: apps, kind: Deployment, name: d}`, "spec.targetRef", "targetRef must be"},
		"empty provider name":          {`  accessLogging: [{providers: [{name: ""}]}]`, "spec.accessLogging[0].providers[0].name", "may not be empty"},
		"bad CEL":                      {`  accessLogging: [{filter: {expression: "response.code >"}}]`, "spec.accessLogging[0].filter.expression", "invalid CEL"},
		"unknown attribute":            {`  accessLogging: [{filter: {expression: "request.foo == 'a'"}}]`, "spec.accessLogging[0].filter.expression", "request.foo"},
		"sampling above 100":           {`  tracing: [{randomSamplingPercentage: 101}]`, "spec.tracing[0].randomSamplingPercentage", "[0.0, 100.0]"},
		"sampling below 0":             {`  tracing: [{randomSamplingPercentage: -1}]`, "spec.tracing[0].randomSamplingPercentage", "[0.0, 100.0]"},
		"empty literal":                {`  tracing: [{customTags: {a: {literal: {value: ""}}}}]`, `spec.tracing[0].customTags["a"].literal.value`, "may not be empty"},
		"empty header tag":             {`  tracing: [{customTags: {a: {header: {}}}}]`, `spec.tracing[0].customTags["a"].header.name`, "may not be empty"},
		"empty environment tag":        {`  tracing: [{customTags: {a: {environment: {}}}}]`, `spec.tracing[0].customTags["a"].environment.name`, "may not be empty"},
		"nil tag":                      {`  tracing: [{customTags: {a: {}}}]`, `spec.tracing[0].customTags["a"]`, "nil value"},
		"formatter tag":                {`  tracing: [{customTags: {a: {formatter: {value: "%REQ(x)%"}}}}]`, `spec.tracing[0].customTags["a"].formatter`, "not implemented"},
		"upsert without value": {`  metrics: [{overrides: [{tagOverrides: {a: {operation: UPSERT}}}]}]`,
			`spec.metrics[0].overrides[0].tagOverrides["a"].value`, "must be set"},
		"remove with value": {`  metrics: [{overrides: [{tagOverrides: {a: {operation: REMOVE, value: x}}}]}]`,
			`spec.metrics[0].overrides[0].tagOverrides["a"].value`, "only be set"},
		"upsert bad expression": {`  metrics: [{overrides: [{tagOverrides: {a: {value: "request.("}}}]}]`,
			`spec.metrics[0].overrides[0].tagOverrides["a"].value`, "Syntax error"},
		"empty custom metric": {`  metrics: [{overrides: [{match: {customMetric: ""}}]}]`, "spec.metrics[0].overrides[0].match.customMetric", "may not be empty"},
		"reportingInterval":   {`  metrics: [{reportingInterval: 5s}]`, "spec.metrics[0].reportingInterval", "not implemented"},
	}
	for name, c := range bad {
		errs := checkSecurity(t, telHead+c.spec)
		found := false
		for _, e := range errs {
			if e.Field == c.field && strings.Contains(e.Err.Error(), c.msg) && strings.Contains(e.Error(), "policy.yaml") &&
				strings.Contains(e.Error(), "Telemetry foo/t") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want an error on %s containing %q, got %v", name, c.field, c.msg, errs)
		}
	}
}

func TestTelemetryDecodeVersions(t *testing.T) {
	for _, v := range []string{"v1", "v1alpha1"} {
		res := Decode([]byte("apiVersion: telemetry.istio.io/"+v+"\nkind: Telemetry\nmetadata: {name: a}\nspec: {accessLogging: [{}]}\n"), DecodeOptions{})
		if len(res.Errors) > 0 || len(res.Resources) != 1 || len(res.NotEnforced) != 0 {
			t.Errorf("%s: %+v", v, res)
		}
	}
	res := Decode([]byte("apiVersion: telemetry.istio.io/v2\nkind: Telemetry\nmetadata: {name: a}\nspec: {}\n"), DecodeOptions{})
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "apiVersion") {
		t.Errorf("v2: %v", res.Errors)
	}
	res = Decode([]byte("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: a}\nspec: {accessLoging: [{}]}\n"), DecodeOptions{})
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "accessLoging") {
		t.Errorf("misspelt field: %v", res.Errors)
	}
}

// TestTelemetryConformanceShapes: every Telemetry of the conformance
// cases' access log variants is valid.
func TestTelemetryConformanceShapes(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/conformance/istio-telemetry/access-log-telemetry-*/*.yaml")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res := Decode(data, DecodeOptions{File: f})
		for _, r := range res.Resources {
			if r.Kind != KindTelemetry {
				continue
			}
			n++
			if errs := append(Validate(r), Unsupported(r)...); len(errs) > 0 {
				t.Errorf("%s: %v", f, errs)
			}
		}
	}
	if n == 0 {
		t.Skip("conformance cases not found next to the worktree")
	}
	t.Logf("%d Telemetry resources checked", n)
}

func TestTelemetryWarnings(t *testing.T) {
	r := decodeOne(t, telHead+`  tracing:
  - providers: [{name: a}, {name: b}]
  - randomSamplingPercentage: 5`)
	ws := Warnings(r)
	if len(ws) != 2 || !strings.Contains(ws.Error(), "only the first is used") {
		t.Errorf("warnings: %v", ws)
	}
}
