package conformance

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestIstioTasksKubernetes runs istio-tasks' cases on Kubernetes: one real
// kube-apiserver and etcd (internal/kubetest) for the whole group, and per
// case a control plane with --kubeconfig and no folder. Every object a case
// has (its Services, its config.yaml as the task applies it, a
// WorkloadEntry per workload, the mesh config as the ConfigMap
// istio-system/istio) is applied through the API server, and deleted again
// when the case ends; proxies run as local processes, as in istio-tasks.
// The checks and their verdicts are istio-tasks' own, counted under their
// own floor.
func TestIstioTasksKubernetes(t *testing.T) {
	g := istioTasks{kube: true}
	if st, err := os.Stat(filepath.Join(corpusDir(t), g.Corpus())); err == nil && st.IsDir() {
		g.cluster = startKubeStore(t)
	}
	runGroup(t, g)
}

// Corpus is the corpus folder the group's cases come from.
func (g istioTasks) Corpus() string {
	if g.kube {
		return "istio-tasks"
	}
	return g.Name()
}

// kubeStore is the API server a kube group's cases apply their objects to.
type kubeStore struct {
	cluster *kubetest.Cluster
	applier *kubetest.Applier
}

func startKubeStore(t *testing.T) *kubeStore {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallIstioCRDs(t)
	c.InstallGatewayAPICRDs(t)
	c.CreateNamespace(t, "istio-system", nil)
	return &kubeStore{cluster: c, applier: c.NewApplier(t)}
}

// meshOptions points a case's mesh at the cluster (nothing for a group
// without one) and deletes what the case applied when it ends.
func (k *kubeStore) meshOptions(t *testing.T, opts *testenv.MeshOptions) {
	if k == nil {
		return
	}
	opts.Kubeconfig, opts.Store = k.cluster.Kubeconfig, k.applier
	// Registered before the mesh starts, so it runs after the mesh stops.
	t.Cleanup(func() {
		if err := k.applier.DeleteAll(context.Background()); err != nil {
			t.Errorf("delete the case's objects: %v", err)
		}
	})
}
