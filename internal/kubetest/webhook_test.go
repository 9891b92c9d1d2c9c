package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// testWebhook registers a mutating admission webhook served over TLS on
// 127.0.0.1 by the test (as sluice control will serve injection) and checks
// that the API server calls it: it labels ConfigMaps and denies those
// labelled deny=true, in namespaces labelled kubetest-webhook=on.
func testWebhook(t *testing.T, c *Cluster) {
	ctx := context.Background()
	cs := c.Client(t)
	url, caPEM, calls := serveWebhook(t)
	const ns = "kubetest-webhook"
	c.CreateNamespace(t, ns, map[string]string{"kubetest-webhook": "on"})
	none, fail, timeout := admissionregv1.SideEffectClassNone, admissionregv1.Fail, int32(5)
	cfg := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kubetest"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:         "configmaps.kubetest.sluice.dev",
			ClientConfig: admissionregv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregv1.RuleWithOperations{{
				Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubetest-webhook": "on"}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create MutatingWebhookConfiguration: %v", err)
	}
	// The API server picks the configuration up from its own informer: a
	// denied create shows the webhook is in force.
	n := 0
	if err := testenv.Eventually(func() error {
		n++
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("denied-%d", n), Namespace: ns, Labels: map[string]string{"deny": "true"}}}
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		if err == nil {
			return errors.New("created: webhook not called yet")
		}
		if !strings.Contains(err.Error(), "denied by kubetest") {
			t.Fatalf("create with deny=true: %v, want the webhook's denial", err)
		}
		return nil
	}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed", Namespace: ns, Labels: map[string]string{"app": "x"}}}
	got, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create allowed configmap: %v", err)
	}
	if got.Labels["kubetest-mutated"] != "true" || got.Labels["app"] != "x" {
		t.Errorf("allowed configmap stored with labels %v, want the webhook's patch", got.Labels)
	}
	// Outside the selected namespace the webhook is not called.
	before := calls.Load()
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unselected", Namespace: "default", Labels: map[string]string{"deny": "true"}}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Errorf("create in a namespace the webhook does not select: %v", err)
	}
	if calls.Load() != before {
		t.Errorf("webhook called for a namespace its selector excludes")
	}
}

// serveWebhook serves the admission webhook over TLS on 127.0.0.1 and
// returns its URL, the CA for caBundle and a count of its calls.
func serveWebhook(t *testing.T) (url string, caPEM []byte, calls *atomic.Int64) {
	t.Helper()
	p := &pki{certsValidFor: time.Hour}
	ca, caPEM, err := p.newCA("webhook-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := p.issue(ca, x509.Certificate{
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	calls = &atomic.Int64{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		admit(t, w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String() + "/mutate", caPEM, calls
}

// admit answers one AdmissionReview: deny a ConfigMap labelled deny=true,
// else add the label kubetest-mutated=true with a JSON patch.
func admit(t *testing.T, w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		t.Errorf("webhook: bad AdmissionReview: %v", err)
		http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
		return
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(review.Request.Object.Raw, &cm); err != nil {
		t.Errorf("webhook: object: %v", err)
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	switch {
	case cm.Labels["deny"] == "true":
		resp.Allowed = false
		resp.Result = &metav1.Status{Message: "denied by kubetest", Code: http.StatusForbidden}
	case cm.Labels == nil:
		resp.Patch = []byte(`[{"op":"add","path":"/metadata/labels","value":{"kubetest-mutated":"true"}}]`)
	default:
		resp.Patch = []byte(`[{"op":"add","path":"/metadata/labels/kubetest-mutated","value":"true"}]`)
	}
	if resp.Patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	review.Response = resp
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&review)
}
