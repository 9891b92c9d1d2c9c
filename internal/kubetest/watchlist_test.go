package kubetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// testWatchList opens a streaming list (a watch with sendInitialEvents),
// which client-go's informers try first since 1.35 (WatchListClient): the
// API server must send the existing objects and then a bookmark marking
// their end. kube-apiserver 1.36 refuses it when etcd lacks
// RequestWatchProgress (Debian's etcd 3.4.23), which is why kubetest runs
// etcd 3.6.
func testWatchList(t *testing.T, c *Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := c.Client(t)
	const ns = "kubetest-watchlist"
	c.CreateNamespace(t, ns, nil)
	want := map[string]bool{}
	for i := range 3 {
		name := fmt.Sprintf("cm-%d", i)
		want[name] = true
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create configmap: %v", err)
		}
	}
	send := true
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{
		SendInitialEvents:    &send,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks:  true,
	})
	if err != nil {
		t.Fatalf("streaming list: %v", err)
	}
	defer w.Stop()
	got := map[string]bool{}
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added:
			got[ev.Object.(*corev1.ConfigMap).Name] = true
		case watch.Bookmark:
			cm := ev.Object.(*corev1.ConfigMap)
			if cm.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
				continue
			}
			if len(got) != len(want) {
				t.Fatalf("initial events ended after %v, want %v", got, want)
			}
			return
		case watch.Error:
			t.Fatalf("streaming list refused: %v", ev.Object)
		}
	}
	t.Fatalf("streaming list ended without the initial-events-end bookmark (got %v): %v", got, ctx.Err())
}
