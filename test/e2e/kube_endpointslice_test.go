package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// podYAML is the Pod a Kubernetes cluster would hold for workload w, on
// node.
func podYAML(w *testenv.Workload, node string) string {
	return testenv.MustYAML(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": w.Name, "namespace": w.Namespace, "labels": w.Labels},
		"spec": map[string]any{"nodeName": node, "serviceAccountName": "default",
			"containers": []any{map[string]any{"name": "app", "image": "echo"}}},
		"status": map[string]any{"phase": "Running"},
	})
}

// sliceYAML is an EndpointSlice of Service svc whose endpoints are the
// workloads' sidecar inbound addresses, the ready ones as given.
func sliceYAML(name, svc string, ready map[*testenv.Workload]bool) string {
	var endpoints []any
	port := 0
	for w, r := range ready {
		ip := strings.Split(w.InboundAddress, ":")[0]
		endpoints = append(endpoints, map[string]any{"addresses": []string{ip}, "conditions": map[string]any{"ready": r},
			"targetRef": map[string]any{"kind": "Pod", "name": w.Name, "namespace": w.Namespace}})
		port = w.InboundPort
	}
	return testenv.MustYAML(map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata":    map[string]any{"name": name, "namespace": "default", "labels": map[string]string{"kubernetes.io/service-name": svc}},
		"addressType": "IPv4", "endpoints": endpoints,
		"ports": []any{map[string]any{"name": "http", "port": port}},
	})
}

// TestKubeEndpointSlices (local mode, a folder holding what a cluster
// would): a Service's endpoints are its EndpointSlices' ready endpoints,
// with labels from the Pods they name (DestinationRule subsets select by
// them); no endpoint comes from a Pod the
// Service selects but no slice lists; a slice edit moves traffic.
func TestKubeEndpointSlices(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("node.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}\n")
	m.WriteConfig("service-reviews.yaml", testenv.ServiceYAML("reviews", "default", map[string]string{"app": "reviews"}, map[string]int{"http": 9080}))
	// One inbound port for both pods, as a Deployment's pods share their
	// container port: one slice port serves both.
	port := testenv.FreePort()
	var ws []*testenv.Workload
	for _, v := range []string{"v1", "v2"} {
		w := m.AddWorkload(testenv.WorkloadOptions{Service: "reviews", Version: v, IP: testenv.LoopbackIP(), InboundPort: port})
		// The Pod and its slice entry replace the WorkloadEntry.
		m.RemoveConfig(w.ConfigFile)
		m.WriteConfig("pod-"+w.Name+".yaml", podYAML(w, "node-1"))
		ws = append(ws, w)
	}
	v1, v2 := ws[0], ws[1]
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WriteConfig("slice-reviews.yaml", sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: true, v2: false}))
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)

	// v2 becomes ready and v1 not: traffic moves within a second of the
	// edit (the file source's watch, the push, the proxy's swap).
	m.WriteConfig("slice-reviews.yaml", sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: false, v2: true}))
	start := time.Now()
	m.WaitConverged(func() error { return allServedBy(c, 5, "reviews:9080", "/", nil, "reviews", "v2") }, convergeTimeout)
	moved := time.Since(start)
	t.Logf("traffic moved to v2 %v after the slice edit", moved)
	if moved > time.Second {
		t.Errorf("traffic moved %v after the slice edit, want within 1s", moved)
	}

	// Both ready, a subset by the version label: the labels are the Pods'
	// (the slice carries none), so the subset holds v1's Pod only.
	m.WriteConfig("slice-reviews.yaml", sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: true, v2: true}))
	m.WriteConfig("route-reviews.yaml", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}
`)
	m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)
	m.RemoveConfig("route-reviews.yaml")

	// Without any slice the Service has no endpoints, though its selector
	// matches both Pods: Istio reads EndpointSlices, not Pods.
	m.RemoveConfig("slice-reviews.yaml")
	m.WaitConverged(func() error {
		r, err := c.Get("reviews:9080", "/", nil)
		if err != nil {
			return err
		}
		if r.Status != 503 {
			return fmt.Errorf("want 503 (no endpoints), got %s", r)
		}
		return nil
	}, convergeTimeout)
}
