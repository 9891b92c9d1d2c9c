package kubetest

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testWorkload creates a Pod and a Service as issue 11's tests will (the
// Pod through the admission chain, as the injection webhook sees it): the
// ServiceAccount plugin must accept the Pod in a namespace made by
// CreateNamespace and mount its projected token, and the Service must get
// a cluster IP from --service-cluster-ip-range.
func testWorkload(t *testing.T, c *Cluster) {
	ctx := context.Background()
	cs := c.Client(t)
	const ns = "kubetest-workload"
	c.CreateNamespace(t, ns, map[string]string{"istio-injection": "enabled"})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "productpage-v1", Namespace: ns, Labels: map[string]string{"app": "productpage"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "productpage", Image: "example.invalid/productpage:v1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
		}}},
	}
	got, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	if got.Spec.ServiceAccountName != "default" {
		t.Errorf("pod service account %q, want default (ServiceAccount admission)", got.Spec.ServiceAccountName)
	}
	projected := false
	for _, v := range got.Spec.Volumes {
		projected = projected || (strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil)
	}
	if !projected {
		t.Errorf("pod has no projected service account token volume: %+v", got.Spec.Volumes)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "productpage", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "productpage"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080}},
		},
	}
	gotSvc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	ip, err := netip.ParseAddr(gotSvc.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix("10.96.0.0/16").Contains(ip) {
		t.Errorf("service cluster IP %q (%v), want one from 10.96.0.0/16", gotSvc.Spec.ClusterIP, err)
	}
}
