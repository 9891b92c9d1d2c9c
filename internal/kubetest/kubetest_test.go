package kubetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestCluster runs the real API server once and checks, with client-go,
// what issue 11's tests build on: the admin kubeconfig, core objects, RBAC,
// TokenRequest + TokenReview with audience istio-ca, a CRD, an admission
// webhook on 127.0.0.1 and shared informers.
func TestCluster(t *testing.T) {
	c := Start(t, Options{})
	t.Run("Kubeconfig", func(t *testing.T) { testKubeconfig(t, c) })
	t.Run("ConfigMap", func(t *testing.T) { testConfigMap(t, c) })
	t.Run("TokenReview", func(t *testing.T) { testTokenReview(t, c) })
	t.Run("RBAC", func(t *testing.T) { testRBAC(t, c) })
	t.Run("CRD", func(t *testing.T) { testCRD(t, c) })
	t.Run("Workload", func(t *testing.T) { testWorkload(t, c) })
	t.Run("Webhook", func(t *testing.T) { testWebhook(t, c) })
	t.Run("Informer", func(t *testing.T) { testInformer(t, c) })
	t.Run("WatchList", func(t *testing.T) { testWatchList(t, c) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, c) }) // last: it restarts the API server
}

// testKubeconfig loads Cluster.Kubeconfig as a client would and asks the
// API server who it is talking to and its version.
func testKubeconfig(t *testing.T, c *Cluster) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", c.Kubeconfig, err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != DefaultVersion {
		t.Errorf("server version %q, want %q", v.GitVersion, DefaultVersion)
	}
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != adminUser || !slices.Contains(u.Groups, adminGroup) {
		t.Errorf("kubeconfig user %q groups %v, want %q in %s", u.Username, u.Groups, adminUser, adminGroup)
	}
}

// testConfigMap stores a ConfigMap in a new namespace and reads it back.
func testConfigMap(t *testing.T, c *Cluster) {
	ctx := context.Background()
	cs := c.Client(t)
	c.CreateNamespace(t, "kubetest-cm", map[string]string{"istio-injection": "enabled"})
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "kubetest-cm"},
		Data:       map[string]string{"mesh": "defaultConfig:\n  discoveryAddress: sluice:15012\n"},
	}
	if _, err := cs.CoreV1().ConfigMaps("kubetest-cm").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	got, err := cs.CoreV1().ConfigMaps("kubetest-cm").Get(ctx, "istio", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get configmap: %v", err)
	}
	if got.Data["mesh"] != cm.Data["mesh"] || got.UID == "" || got.ResourceVersion == "" {
		t.Errorf("configmap read back as %+v", got)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "kubetest-cm", metav1.GetOptions{})
	if err != nil || ns.Labels["istio-injection"] != "enabled" {
		t.Errorf("namespace %+v, %v: want label istio-injection=enabled", ns, err)
	}
	if _, err := cs.CoreV1().ServiceAccounts("kubetest-cm").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("default service account: %v", err)
	}
}

// testTokenReview gets a token for a ServiceAccount with audience istio-ca
// (as a sidecar's projected token) and checks that TokenReview accepts it
// for that audience only, and rejects a tampered token.
func testTokenReview(t *testing.T, c *Cluster) {
	ctx := context.Background()
	cs := c.Client(t)
	c.CreateNamespace(t, "kubetest-sa", nil)
	token := c.ServiceAccountToken(t, "kubetest-sa", "productpage", []string{"istio-ca"})
	review := func(token string, audiences ...string) authnv1.TokenReviewStatus {
		t.Helper()
		r, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token review: %v", err)
		}
		return r.Status
	}
	st := review(token, "istio-ca")
	if !st.Authenticated || st.User.Username != "system:serviceaccount:kubetest-sa:productpage" ||
		!slices.Contains(st.Audiences, "istio-ca") {
		t.Errorf("token review for audience istio-ca: %+v", st)
	}
	if st.User.Extra["authentication.kubernetes.io/credential-id"] == nil {
		t.Errorf("token review gives no credential id: %+v", st.User)
	}
	if st := review(token, "not-istio-ca"); st.Authenticated {
		t.Errorf("token for istio-ca accepted for another audience: %+v", st)
	}
	if st := review(token); st.Authenticated {
		t.Errorf("token for istio-ca accepted for the API server's own audience: %+v", st)
	}
	parts := strings.Split(token, ".")
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1 // still base64url, no longer the signature
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	if st := review(tampered, "istio-ca"); st.Authenticated {
		t.Errorf("tampered token accepted: %+v", st)
	}
}

// testRBAC checks that authorization is RBAC: a service account with no
// bindings is authenticated by its token but may not read Secrets, until
// a RoleBinding grants it.
func testRBAC(t *testing.T, c *Cluster) {
	ctx := context.Background()
	admin := c.Client(t)
	c.CreateNamespace(t, "kubetest-rbac", nil)
	token := c.ServiceAccountToken(t, "kubetest-rbac", "reader", nil) // the API server's own audience
	cfg := &rest.Config{Host: c.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CACertPEM}}
	reader := kubernetes.NewForConfigOrDie(cfg)
	_, err := reader.CoreV1().Secrets("kubetest-rbac").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list secrets without a binding: %v, want Forbidden", err)
	}
	role := &rbacRole{ns: "kubetest-rbac", name: "secret-reader", sa: "reader"}
	role.create(t, admin)
	if err := testenv.Eventually(func() error {
		_, err := reader.CoreV1().Secrets("kubetest-rbac").List(ctx, metav1.ListOptions{})
		return err
	}, 10*time.Second); err != nil {
		t.Fatalf("list secrets with a RoleBinding: %v", err)
	}
}

// gatewayClassGVR is the resource of the Gateway API CRD the test installs.
var gatewayClassGVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gatewayclasses"}

// testCRD installs Gateway API's GatewayClass CRD from the module cache
// (sigs.k8s.io/gateway-api, the version go.mod pins) and stores a
// GatewayClass, which the API server validates against the CRD's schema.
func testCRD(t *testing.T, c *Cluster) {
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	crd := readCRD(t, "gateway.networking.k8s.io_gatewayclasses.yaml")
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD %s: %v", crd.GetName(), err)
	}
	if err := testenv.Eventually(func() error { return crdEstablished(ctx, dyn, crdGVR, crd.GetName()) }, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	gc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
		"metadata": map[string]any{"name": "sluice"},
		"spec":     map[string]any{"controllerName": "sluice.dev/gateway-controller"},
	}}
	// The CRD's resource is served a moment after Established.
	if err := testenv.Eventually(func() error {
		_, err := dyn.Resource(gatewayClassGVR).Create(ctx, gc, metav1.CreateOptions{})
		return err
	}, 10*time.Second); err != nil {
		t.Fatalf("create GatewayClass: %v", err)
	}
	got, err := dyn.Resource(gatewayClassGVR).Get(ctx, "sluice", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get GatewayClass: %v", err)
	}
	if ctl, _, _ := unstructured.NestedString(got.Object, "spec", "controllerName"); ctl != "sluice.dev/gateway-controller" {
		t.Errorf("GatewayClass read back with controllerName %q", ctl)
	}
	// The CRD's OpenAPI schema is enforced: controllerName must be a
	// domain-prefixed path.
	bad := gc.DeepCopy()
	bad.SetName("bad")
	unstructured.SetNestedField(bad.Object, "no-domain", "spec", "controllerName")
	if _, err := dyn.Resource(gatewayClassGVR).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("GatewayClass with controllerName %q: %v, want Invalid", "no-domain", err)
	}
}

// readCRD reads a Gateway API CRD from the module cache.
func readCRD(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard", file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &unstructured.Unstructured{Object: obj}
}

// crdEstablished returns nil once the CRD's Established condition is True.
func crdEstablished(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) error {
	crd, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return nil
		}
	}
	return &notYet{what: "CRD " + name + " Established"}
}

type notYet struct{ what string }

func (e *notYet) Error() string { return e.what + ": not yet" }
