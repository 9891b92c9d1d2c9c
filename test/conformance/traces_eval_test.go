package conformance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The judges of expect.traces and expect.propagation, on hand-made spans
// and headers: they must fail where the corpus README says a check fails.

func TestHeaderPart(t *testing.T) {
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Set("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
	for spec, want := range map[string]string{
		"traceparent#trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
		"traceparent#flags":    "01",
		"b3#sampled":           "1",
		"b3#parent_id":         "05e3ac9a4f6e3b90",
	} {
		if got, ok := headerPart(h, spec); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", spec, got, ok, want)
		}
	}
	if _, ok := headerPart(h, "x-b3-traceid"); ok {
		t.Error("an absent header read as present")
	}
	h.Set("b3", "0")
	if got, ok := headerPart(h, "b3#sampled"); !ok || got != "0" {
		t.Errorf("b3: 0 sampled = %q, %v", got, ok)
	}
}

func TestEvalPropagation(t *testing.T) {
	xs := []exchange{
		{sent: http.Header{}, saw: http.Header{"X-B3-Sampled": {"1"}, "X-B3-Traceid": {"a1"}}},
		{sent: http.Header{}, saw: http.Header{"X-B3-Sampled": {"0"}, "X-B3-Traceid": {"a1"}}},
		{sent: http.Header{}, saw: nil}, // did not reach a backend: not judged
	}
	if p := evalPropagation([]map[string]any{{"saw": "x-b3-traceid", "unique": true}}, xs); len(p) != 1 {
		t.Errorf("a repeated trace id passed unique: %v", p)
	}
	half := map[string]any{"saw": "x-b3-sampled", "fraction": map[string]any{"value": "1", "range": []any{0.4, 0.6}}}
	if p := evalPropagation([]map[string]any{half}, xs); len(p) != 0 {
		t.Errorf("1 of 2 sampled failed [0.4, 0.6]: %v", p)
	}
	none := map[string]any{"saw": "x-b3-sampled", "fraction": map[string]any{"value": "1", "range": []any{0.0, 0.1}}}
	if p := evalPropagation([]map[string]any{none}, xs); len(p) != 1 {
		t.Errorf("1 of 2 sampled passed [0, 0.1]: %v", p)
	}
	if p := evalPropagation([]map[string]any{{"saw": "traceparent", "matches": "00-.*"}}, xs); len(p) != 1 || !strings.Contains(p[0], "absent") {
		t.Errorf("an absent traceparent passed matches: %v", p)
	}
}

func TestEvalTracesLinks(t *testing.T) {
	span := func(trace, id, parent, node string) *testenv.ZipkinSpan {
		return &testenv.ZipkinSpan{TraceID: trace, ID: id, ParentID: parent, Tags: map[string]string{"node_id": node},
			LocalEndpoint: &testenv.ZipkinEndpoint{ServiceName: node + ".default"}}
	}
	linked := []*testenv.ZipkinSpan{span("t1", "a", "", "gw"), span("t1", "b", "a", "web")}
	apart := []*testenv.ZipkinSpan{span("t2", "c", "", "gw"), span("t2", "d", "zz", "web")}
	spec := map[string]any{"traces": []any{2.0, 2.0}, "linked_proxies": 2.0, "linked_traces": []any{2.0, 2.0}}
	all := append(append([]*testenv.ZipkinSpan{}, linked...), apart...)
	if p := evalTraces(spec, all, all); len(p) != 1 || !strings.Contains(p[0], "joining") {
		t.Errorf("a trace whose spans are not joined counted as linked: %v", p)
	}
	spec["linked_traces"] = []any{1.0, 1.0}
	if p := evalTraces(spec, all, all); len(p) != 0 {
		t.Errorf("one linked trace of two: %v", p)
	}
	every := map[string]any{"span_checks": []any{map[string]any{
		"where": map[string]any{"service_name": `web\.default`}, "count": []any{2.0, 2.0},
		"tags": map[string]any{"node_id": "web"}, "every": true}}}
	if p := evalTraces(every, all, all); len(p) != 0 {
		t.Errorf("span_checks: %v", p)
	}
	all[1].Tags["node_id"] = "other"
	if p := evalTraces(every, all, all); len(p) == 0 {
		t.Error("a span without the tag passed every: true")
	}
}
