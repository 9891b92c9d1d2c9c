package controlplane

import (
	"strings"
	"testing"
	"time"
)

// A Telemetry naming a provider MeshConfig does not define is reported
// in /debug/status config_errors and logged as an ERROR naming the
// resource and field; the rest of the config applies.
func TestTelemetryProviderErrorReported(t *testing.T) {
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "telemetry.yaml", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: shop}
spec:
  accessLogging: [{providers: [{name: no-such-provider}]}]
`)
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	st := r.status(t)
	if st.Resources != 1 || len(st.ConfigErrors) != 1 || !strings.Contains(st.ConfigErrors[0], "Telemetry shop/logs") ||
		!strings.Contains(st.ConfigErrors[0], `spec.accessLogging[0].providers[0].name: provider "no-such-provider" is not defined`) {
		t.Fatalf("resources %d, config_errors %v", st.Resources, st.ConfigErrors)
	}
	if n := len(r.log.lines("level=ERROR", "Telemetry provider not usable", "no-such-provider")); n != 1 {
		t.Errorf("%d ERROR lines, want 1", n)
	}
}
