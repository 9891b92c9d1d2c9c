package e2e

import (
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestKubeRegistryFromAPIServer is TestKubeEndpointSlices on a cluster:
// the Node, the Service, its Pods and its EndpointSlice come from a real
// API server (sluice control --kubeconfig, no folder); routing follows the
// slice, and a slice edit through the API moves traffic within a second.
func TestKubeRegistryFromAPIServer(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.CreateNamespace(t, "istio-system", nil)
	cluster.CreateNamespace(t, "default", nil) // its default ServiceAccount, for the Pods
	a := cluster.NewApplier(t)
	a.Apply(t, "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}\n")
	a.Apply(t, testenv.ServiceYAML("reviews", "default", map[string]string{"app": "reviews"}, map[string]int{"http": 9080}))

	m := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig})
	port := testenv.FreePort()
	var ws []*testenv.Workload
	for _, v := range []string{"v1", "v2"} {
		// A pod IP the API server accepts in a slice (not 127/8).
		w := m.AddWorkload(testenv.WorkloadOptions{Service: "reviews", Version: v, IP: testenv.PodIP(t), InboundPort: port})
		m.RemoveConfig(w.ConfigFile) // no folder is read: the Pod and the slice stand for it
		a.Apply(t, podYAML(w, "node-1"))
		ws = append(ws, w)
	}
	v1, v2 := ws[0], ws[1]
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	a.Apply(t, sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: true, v2: false}))
	m.WaitReady()
	m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)

	a.Apply(t, sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: false, v2: true}))
	start := time.Now()
	m.WaitConverged(func() error { return allServedBy(c, 5, "reviews:9080", "/", nil, "reviews", "v2") }, convergeTimeout)
	moved := time.Since(start)
	t.Logf("traffic moved to v2 %v after the slice edit through the API server", moved)
	if moved > time.Second {
		t.Errorf("traffic moved %v after the slice edit, want within 1s", moved)
	}
	if err := m.CheckNoNACK(); err != nil {
		t.Error(err)
	}
}
