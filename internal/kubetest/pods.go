package kubetest

import (
	"context"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunPod creates Pod ns/name of service account sa (created if needed)
// scheduled to node, with phase set when not "", as the scheduler and a
// kubelet would leave it (no kubelet runs here).
func (c *Cluster) RunPod(t testing.TB, ns, name, sa, node string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	cs := c.Client(t)
	ctx := context.Background()
	acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, acct, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create serviceaccount %s/%s: %v", ns, sa, err)
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: node,
			Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create pod %s/%s: %v", ns, name, err)
	}
	if phase != "" {
		pod.Status.Phase = phase
		if pod, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("kubetest: pod %s/%s status: %v", ns, name, err)
		}
	}
	return pod
}

// PodToken is the projected token the kubelet gives pod for the
// audiences (an hour): bound to the pod, so its TokenReview names it
// (user extra authentication.kubernetes.io/pod-name, pod-uid).
func (c *Cluster) PodToken(t testing.TB, pod *corev1.Pod, audiences []string) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := c.Client(t).CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return tr.Status.Token
}
