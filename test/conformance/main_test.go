// Package conformance runs the acceptance corpus in ../shared/conformance
// (SLUICE_CONFORMANCE_DIR overrides) against real sluice processes on
// loopback. Each group of the corpus (istio-tasks, later gateway-api and
// gateway-api-mesh) has a Group that turns a case's data into a running
// mesh; the checks themselves are evaluated generically from expect.yaml.
//
// A check whose data asks for something this runner cannot do yet (egress
// to external hosts, a TLS client, the real Bookinfo app, a load run without
// fortio installed, ...) is skipped with the reason, never counted as
// passed. Every run ends with a summary line such as "conformance
// istio-tasks: 12 passed, 0 failed, 20 skipped"; the groups without a
// runner yet get "conformance <group>: not run ..." (TestCorpusGroups).
//
// With CI=true the corpus must be present and every group's passed count
// must reach its floor in floors.yaml; elsewhere an absent corpus skips.
package conformance

import (
	"os"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// runners are the groups this package runs, one Test function each.
var runners = []Group{istioTasks{}, istioTasks{security: true}, istioTasks{telemetry: true}, istioTasks{kube: true}, gatewayAPIGroup{}, gatewayAPIGroup{mesh: true}}

func hasRunner(group string) bool {
	if group == analyzersGroup { // no processes: TestIstioAnalyzers
		return true
	}
	for _, g := range runners {
		if g.Name() == group {
			return true
		}
	}
	return false
}

func runnerNames() []string {
	var names []string
	for _, g := range runners {
		names = append(names, g.Name())
	}
	names = append(names, analyzersGroup)
	return names
}

// TestIstioTasks runs the istio-tasks group: Istio's traffic-management
// tasks, sent from in-mesh clients.
func TestIstioTasks(t *testing.T) { runGroup(t, istioTasks{}) }
