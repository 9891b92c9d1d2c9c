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

// testInformer checks that client-go's shared informers (what the kube
// source of issue 11 is built on) sync promptly and see changes within a
// second against this etcd: Debian's etcd 3.4 lacks RequestWatchProgress,
// so the API server serves consistent lists from etcd rather than its
// watch cache, which must not delay list+watch or streaming lists.
func testInformer(t *testing.T, c *Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.Client(t)
	const ns = "kubetest-informer"
	c.CreateNamespace(t, ns, nil)
	seed := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "seed", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, seed, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	added := make(chan string, 16)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			added <- cm.Name
		}
	}})
	start := time.Now()
	factory.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 10*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		t.Fatalf("informer not synced within 10s")
	}
	t.Logf("informer synced in %v", time.Since(start).Round(time.Millisecond))
	if name := <-added; name != "seed" {
		t.Fatalf("first add %q, want seed", name)
	}
	created := time.Now()
	live := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "live", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, live, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	select {
	case name := <-added:
		if name != "live" {
			t.Fatalf("add %q, want live", name)
		}
		t.Logf("informer saw a new ConfigMap %v after its create", time.Since(created).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatalf("informer did not see a new ConfigMap within 1s")
	}
}
