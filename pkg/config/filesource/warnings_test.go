package filesource

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// What Istio accepts with a warning applies, and the warning is logged
// naming file, resource and field.
func TestLoadLogsWarnings(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "dr.yaml", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: old}
spec:
  host: old
  trafficPolicy: {outlierDetection: {consecutiveErrors: 7}}
`)
	var mu sync.Mutex
	var lines []string
	s, err := New(Options{Dir: dir, Logf: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Errors) != 0 || len(snap.Resources) != 1 {
		t.Fatalf("the resource must apply: errors %v, %d resources", snap.Errors, len(snap.Resources))
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "config: WARNING") || !strings.Contains(all, "dr.yaml") ||
		!strings.Contains(all, "DestinationRule default/old: spec.trafficPolicy.outlierDetection.consecutiveErrors") {
		t.Errorf("no warning naming file, resource and field in the log:\n%s", all)
	}
}
