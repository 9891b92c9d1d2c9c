package e2e

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// kubeApplier creates or replaces objects given as YAML through the API
// server, their status too (no kubelet or controllers run in tests).
type kubeApplier struct {
	t      *testing.T
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newKubeApplier(t *testing.T, c *kubetest.Cluster) *kubeApplier {
	return &kubeApplier{t: t, dyn: dynamic.NewForConfigOrDie(c.RESTConfig()),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client(t).Discovery()))}
}

func (a *kubeApplier) apply(y string) {
	a.t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(y), &obj); err != nil {
		a.t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.t.Fatalf("%s: %v", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if u.GetNamespace() != "" {
		ri = a.dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	ctx := context.Background()
	status := u.Object["status"]
	got, err := ri.Create(ctx, u, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if gerr != nil {
			a.t.Fatal(gerr)
		}
		u.SetResourceVersion(cur.GetResourceVersion())
		got, err = ri.Update(ctx, u, metav1.UpdateOptions{})
	}
	if err != nil {
		a.t.Fatalf("apply %s %s: %v", gvk.Kind, u.GetName(), err)
	}
	if status != nil {
		got.Object["status"] = status
		if _, err := ri.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			a.t.Fatalf("status of %s %s: %v", gvk.Kind, u.GetName(), err)
		}
	}
}

// TestKubeRegistryFromAPIServer is TestKubeEndpointSlices on a cluster:
// the Node, the Service, its Pods and its EndpointSlice come from a real
// API server (sluice control --kubeconfig, no folder); routing follows the
// slice, and a slice edit through the API moves traffic within a second.
func TestKubeRegistryFromAPIServer(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.CreateNamespace(t, "istio-system", nil)
	cluster.CreateNamespace(t, "default", nil) // its default ServiceAccount, for the Pods
	a := newKubeApplier(t, cluster)
	a.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1}\n")
	a.apply(testenv.ServiceYAML("reviews", "default", map[string]string{"app": "reviews"}, map[string]int{"http": 9080}))

	m := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig})
	port := testenv.FreePort()
	var ws []*testenv.Workload
	for _, v := range []string{"v1", "v2"} {
		// A pod IP the API server accepts in a slice (not 127/8).
		w := m.AddWorkload(testenv.WorkloadOptions{Service: "reviews", Version: v, IP: testenv.PodIP(t), InboundPort: port})
		m.RemoveConfig(w.ConfigFile) // no folder is read: the Pod and the slice stand for it
		a.apply(podYAML(w, "node-1"))
		ws = append(ws, w)
	}
	v1, v2 := ws[0], ws[1]
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	a.apply(sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: true, v2: false}))
	m.WaitReady()
	m.WaitConverged(func() error { return allServedBy(c, 20, "reviews:9080", "/", nil, "reviews", "v1") }, convergeTimeout)

	a.apply(sliceYAML("reviews-1", "reviews", map[*testenv.Workload]bool{v1: false, v2: true}))
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
