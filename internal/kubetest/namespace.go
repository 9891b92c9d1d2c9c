package kubetest

import (
	"context"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CreateNamespace creates namespace name with labels, and its "default"
// ServiceAccount, which kube-controller-manager's serviceaccounts
// controller would create and without which the ServiceAccount admission
// plugin rejects Pods that name no service account. An existing namespace
// or ServiceAccount is left as it is.
func (c *Cluster) CreateNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	cs := c.Client(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := cs.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create serviceaccount %s/default: %v", name, err)
	}
}

// ServiceAccountToken creates ServiceAccount ns/name if needed and returns
// a token for it from TokenRequest (an hour), for the given audiences (nil:
// the API server's own), as a pod's projected token is made.
func (c *Cluster) ServiceAccountToken(t testing.TB, ns, name string, audiences []string) string {
	t.Helper()
	cs := c.Client(t)
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create serviceaccount %s/%s: %v", ns, name, err)
	}
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token request for %s/%s: %v", ns, name, err)
	}
	if len(strings.Split(tr.Status.Token, ".")) != 3 {
		t.Fatalf("kubetest: token request gave %q, not a JWT", tr.Status.Token)
	}
	return tr.Status.Token
}
