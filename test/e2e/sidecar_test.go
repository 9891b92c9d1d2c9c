package e2e

import (
	"fmt"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestSidecarScope: a namespace-wide Sidecar limits its sidecars' egress to
// their namespace with REGISTRY_ONLY, so a service elsewhere answers 502;
// a workload-selected Sidecar widens egress for one client.
func TestSidecarScope(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("services.yaml", testenv.ServiceYAML("inside", "default", map[string]string{"app": "inside"}, map[string]int{"http": 8080})+
		"---\n"+testenv.ServiceYAML("outside", "other", map[string]string{"app": "outside"}, map[string]int{"http": 8080}))
	m.AddWorkload(testenv.WorkloadOptions{Service: "inside"})
	m.AddWorkload(testenv.WorkloadOptions{Service: "outside", Namespace: "other"})
	m.WriteConfig("sidecars.yaml", `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: wide, namespace: default}
spec:
  workloadSelector: {labels: {app: wide}}
  egress: [{hosts: ["./*", "other/*"]}]
`)
	narrow := m.AddClient(testenv.ClientOptions{Name: "narrow"})
	wide := m.AddClient(testenv.ClientOptions{Name: "wide", Labels: map[string]string{"app": "wide"}})
	expect := func(c *testenv.Client, host string, status int, service string) func() error {
		return func() error {
			r, err := c.Get(host, "/", nil)
			if err != nil {
				return err
			}
			if r.Status != status {
				return fmt.Errorf("%s from %s: want %d, got %s", host, c.Name, status, r)
			}
			if service != "" {
				return servedBy(r, service, "")
			}
			return nil
		}
	}
	m.WaitConverged(expect(narrow, "inside:8080", 200, "inside"), convergeTimeout)
	m.WaitConverged(expect(narrow, "outside.other:8080", 502, ""), convergeTimeout)
	m.WaitConverged(expect(wide, "outside.other:8080", 200, "outside"), convergeTimeout)
	m.WaitConverged(expect(wide, "inside:8080", 200, "inside"), convergeTimeout)
	// Without the namespace-wide Sidecar the narrow client sees everything.
	m.WriteConfig("sidecars.yaml", `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: wide, namespace: default}
spec:
  workloadSelector: {labels: {app: wide}}
  egress: [{hosts: ["./*", "other/*"]}]
`)
	m.WaitConverged(expect(narrow, "outside.other:8080", 200, "outside"), convergeTimeout)
	requireSyncedNoNACK(t, m)
}
