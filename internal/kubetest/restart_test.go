package kubetest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// testRestart restarts the API server under a running informer: the
// informer's watch breaks, and it must resume (same etcd, same resource
// versions) and see an object created after the restart, with no new
// client. It also checks that objects survive the restart (in etcd).
func testRestart(t *testing.T, c *Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.Client(t)
	const ns = "kubetest-restart"
	c.CreateNamespace(t, ns, nil)
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	added := make(chan string, 16)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			added <- cm.Name
		}
	}})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer not synced")
	}
	c.RestartAPIServer(t)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace after restart: %v", err)
	}
	created := time.Now()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap after restart: %v", err)
	}
	select {
	case name := <-added:
		if name != "after-restart" {
			t.Fatalf("add %q, want after-restart", name)
		}
		t.Logf("informer saw a ConfigMap created after the restart %v later", time.Since(created).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("informer did not see a ConfigMap created after the restart within 30s")
	}
}
