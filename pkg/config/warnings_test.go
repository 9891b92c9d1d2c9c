package config

import (
	"strings"
	"testing"
)

// The deprecated consecutiveErrors is accepted with a warning naming the
// field, wherever a traffic policy can hold it; other fields warn nothing.
func TestWarningsConsecutiveErrors(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: old}
spec:
  host: old
  trafficPolicy:
    outlierDetection: {consecutiveErrors: 7}
    portLevelSettings:
    - port: {number: 80}
      outlierDetection: {consecutiveErrors: 2}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {outlierDetection: {consecutiveErrors: 3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: new}
spec:
  host: new
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 7}}
`
	res := Decode([]byte(yaml), DecodeOptions{File: "w.yaml"})
	if len(res.Errors) > 0 || len(res.Resources) != 2 {
		t.Fatal(res.Errors, len(res.Resources))
	}
	var got []string
	for _, r := range res.Resources {
		if errs := Validate(r); len(errs) > 0 {
			t.Fatalf("deprecated field rejected: %v", errs)
		}
		for _, w := range Warnings(r) {
			got = append(got, w.Error())
		}
	}
	want := []string{
		"DestinationRule default/old: spec.trafficPolicy.outlierDetection.consecutiveErrors",
		"DestinationRule default/old: spec.trafficPolicy.portLevelSettings[0].outlierDetection.consecutiveErrors",
		"DestinationRule default/old: spec.subsets[0].trafficPolicy.outlierDetection.consecutiveErrors",
	}
	all := strings.Join(got, "\n")
	if len(got) != len(want) {
		t.Fatalf("want %d warnings, got:\n%s", len(want), all)
	}
	for _, w := range want {
		if !strings.Contains(all, w) || !strings.Contains(all, "w.yaml") {
			t.Errorf("no warning naming %s in:\n%s", w, all)
		}
	}
}
