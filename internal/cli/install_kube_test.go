package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/kube/install"
)

// TestInstallOnAPIServer runs install, tag and uninstall against a real
// kube-apiserver: the demo profile applied (CRDs Established and usable,
// control plane, webhook, RBAC, gateways; server-side applied by
// sluice-installer; again without change), the readiness wait failing
// with the Deployments it waited for (no kubelet runs pods), a canary
// revision beside the default one, a tag moved to it and listed, the
// ambient profile (its DaemonSet waited for, pruned by another profile),
// the canary uninstalled with its tag, and --purge leaving nothing
// labelled.
func TestInstallOnAPIServer(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	ctx := t.Context()
	kc := cluster.Kubeconfig
	sluice := func(args ...string) (string, error) {
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetIn(strings.NewReader(""))
		cmd.SetArgs(append(args, "--kubeconfig", kc))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := sluice(args...)
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	cs := cluster.Client(t)

	begin := time.Now()
	must("install", "-y", "--set", "profile=demo", "--wait=false")
	t.Logf("install --set profile=demo: %v", time.Since(begin).Round(time.Millisecond))
	for _, crd := range []string{"virtualservices.networking.istio.io", "authorizationpolicies.security.istio.io", "httproutes.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io"} {
		obj := getObj(ctx, t, dyn, gvr("apiextensions.k8s.io", "customresourcedefinitions"), "", crd)
		if !established(obj) {
			t.Errorf("CRD %s not Established", crd)
		}
	}
	vs := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "r", "namespace": "default"}, "spec": map[string]any{"hosts": []any{"r"},
			"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "r"}}}}}}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("default").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Errorf("the installed CRD does not serve VirtualServices: %v", err)
	}
	for _, o := range []struct{ g, r, ns, name string }{
		{"apps", "deployments", "istio-system", "istiod"},
		{"apps", "deployments", "istio-system", "istio-ingressgateway"},
		{"apps", "deployments", "istio-system", "istio-egressgateway"},
		{"", "services", "istio-system", "istiod"},
		{"", "services", "istio-system", "istio-ingressgateway"},
		{"", "serviceaccounts", "istio-system", "istiod"},
		{"", "configmaps", "istio-system", "istio"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "istio-sidecar-injector"},
		{"rbac.authorization.k8s.io", "clusterroles", "", "istiod-istio-system"},
		{"rbac.authorization.k8s.io", "clusterrolebindings", "", "istiod-istio-system"},
		{"rbac.authorization.k8s.io", "roles", "istio-system", "istiod"},
		{"rbac.authorization.k8s.io", "rolebindings", "istio-system", "istiod"},
	} {
		obj := getObj(ctx, t, dyn, gvr(o.g, o.r), o.ns, o.name)
		if obj.GetLabels()[install.LabelManagedBy] != install.ManagedBy || obj.GetLabels()[install.LabelRevision] != "default" {
			t.Errorf("%s %s: labels %v", o.r, o.name, obj.GetLabels())
		}
		if !slices.ContainsFunc(obj.GetManagedFields(), func(f metav1.ManagedFieldsEntry) bool {
			return f.Manager == install.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("%s %s: not server-side applied by %s", o.r, o.name, install.FieldManager)
		}
	}
	// Again: nothing changes (server-side apply of the same manifest).
	d1 := getObj(ctx, t, dyn, gvr("apps", "deployments"), "istio-system", "istiod")
	must("install", "-y", "--set", "profile=demo", "--wait=false")
	if d2 := getObj(ctx, t, dyn, gvr("apps", "deployments"), "istio-system", "istiod"); d2.GetResourceVersion() != d1.GetResourceVersion() {
		t.Errorf("a second identical install changed istiod (%s -> %s)", d1.GetResourceVersion(), d2.GetResourceVersion())
	}
	// The installed RBAC is enough for sluice control: run as the istiod
	// service account, it becomes ready, keeps its CA in istio-system,
	// patches the installed webhook's caBundle and writes the root
	// ConfigMaps, and authorizes a node proxy's certificate requests.
	// A tag set before the control plane patched its own caBundle gets the
	// roots from the control plane too (and install's prune leaves tags).
	must("tag", "set", "stable")
	runControlAsIstiod(t, cluster)

	// Another profile prunes what it does not hold: demo -> default drops the
	// egress gateway.
	if out := must("install", "-y", "--wait=false"); !strings.Contains(out, "pruned Deployment istio-system/istio-egressgateway\n") {
		t.Errorf("install of the default profile over demo:\n%s", out)
	}
	if _, err := dyn.Resource(gvr("apps", "deployments")).Namespace("istio-system").Get(ctx, "istio-egressgateway", metav1.GetOptions{}); err == nil {
		t.Errorf("istio-egressgateway left after installing the default profile")
	}
	// The readiness wait (the default): no pod ever runs here.
	out, err := sluice("install", "-y", "--set", "profile=minimal", "--readiness-timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "not ready within 1s") || !strings.Contains(err.Error(), "Deployment istio-system/istiod: generation not observed") {
		t.Errorf("install with the readiness wait: %v\n%s", err, out)
	}

	// Ambient: the node proxy's DaemonSet, service account and RBAC, waited
	// for as the Deployments are; minimal over it prunes them.
	out, err = sluice("install", "-y", "--set", "profile=ambient", "--readiness-timeout", "1s")
	if err == nil || !strings.Contains(err.Error(), "DaemonSet istio-system/ztunnel: generation not observed") {
		t.Errorf("install of the ambient profile with the readiness wait: %v\n%s", err, out)
	}
	ztunnel := []struct{ g, r, ns, name string }{
		{"apps", "daemonsets", "istio-system", "ztunnel"},
		{"", "serviceaccounts", "istio-system", "ztunnel"},
		{"rbac.authorization.k8s.io", "clusterroles", "", "ztunnel-istio-system"},
		{"rbac.authorization.k8s.io", "clusterrolebindings", "", "ztunnel-istio-system"},
	}
	for _, o := range ztunnel {
		if obj := getObj(ctx, t, dyn, gvr(o.g, o.r), o.ns, o.name); obj.GetLabels()[install.LabelRevision] != "default" {
			t.Errorf("%s %s: labels %v", o.r, o.name, obj.GetLabels())
		}
	}
	if _, err := dyn.Resource(gvr("apps", "deployments")).Namespace("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{}); err == nil {
		t.Errorf("the ambient profile left the ingress gateway")
	}
	out = must("install", "-y", "--set", "profile=minimal", "--wait=false")
	for _, gone := range []string{"DaemonSet istio-system/ztunnel", "ServiceAccount istio-system/ztunnel", "ClusterRole ztunnel-istio-system"} {
		if !strings.Contains(out, "pruned "+gone+"\n") {
			t.Errorf("minimal over ambient did not prune %s:\n%s", gone, out)
		}
	}
	must("install", "-y", "--set", "profile=ambient", "--wait=false")

	// A canary revision beside the default one, and a tag moved to it.
	must("install", "-y", "--set", "profile=minimal", "--revision", "canary", "--wait=false")
	getObj(ctx, t, dyn, gvr("apps", "deployments"), "istio-system", "istiod-canary")
	canon := getObj(ctx, t, dyn, gvr("admissionregistration.k8s.io", "mutatingwebhookconfigurations"), "", "istio-sidecar-injector-canary")
	// What sluice control does once running: the caBundle patched in.
	hooks, _, _ := unstructured.NestedSlice(canon.Object, "webhooks")
	for _, h := range hooks {
		unstructured.SetNestedField(h.(map[string]any), "Y2EtYnVuZGxl", "clientConfig", "caBundle") // "ca-bundle"
	}
	unstructured.SetNestedSlice(canon.Object, hooks, "webhooks")
	if _, err := dyn.Resource(gvr("admissionregistration.k8s.io", "mutatingwebhookconfigurations")).Update(ctx, canon, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.CreateNamespace(t, "shop", map[string]string{"istio.io/rev": "prod"})
	must("tag", "set", "prod", "--revision", "canary")
	tag, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-prod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tag.Webhooks) != 2 || tag.Labels["istio.io/tag"] != "prod" || tag.Labels["istio.io/rev"] != "canary" {
		t.Errorf("tag webhook: labels %v, %d webhooks", tag.Labels, len(tag.Webhooks))
	}
	for _, w := range tag.Webhooks {
		if w.ClientConfig.Service == nil || w.ClientConfig.Service.Name != "istiod-canary" || string(w.ClientConfig.CABundle) != "ca-bundle" {
			t.Errorf("tag webhook %s: clientConfig %+v", w.Name, w.ClientConfig)
		}
		if !strings.Contains(w.NamespaceSelector.String()+w.ObjectSelector.String(), "prod") {
			t.Errorf("tag webhook %s does not select istio.io/rev=prod", w.Name)
		}
	}
	if out := must("tag", "list"); !regexpLine(out, `^prod\s+canary\s+shop$`) || !regexpLine(out, `^stable\s+default\s*$`) {
		t.Errorf("tag list:\n%s", out)
	}
	if _, err := sluice("tag", "set", "prod", "--revision", ""); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("moving a tag without --overwrite: %v", err)
	}
	if _, err := sluice("tag", "set", "canary"); err == nil || !strings.Contains(err.Error(), "revision of that name") {
		t.Errorf("a tag named as a revision: %v", err)
	}
	if _, err := sluice("tag", "remove", "prod"); err == nil || !strings.Contains(err.Error(), "namespace shop") {
		t.Errorf("removing a tag in use: %v", err)
	}

	// The canary goes with its tag; the default revision stays.
	out = must("uninstall", "--revision", "canary", "-y")
	for _, gone := range []string{"Deployment istio-system/istiod-canary", "MutatingWebhookConfiguration istio-revision-tag-prod", "MutatingWebhookConfiguration istio-sidecar-injector-canary"} {
		if !strings.Contains(out, "removed "+gone+"\n") {
			t.Errorf("uninstall --revision canary did not remove %s:\n%s", gone, out)
		}
	}
	if strings.Contains(out, "istiod\n") || strings.Contains(out, "CustomResourceDefinition") {
		t.Errorf("uninstall --revision canary removed the default revision or CRDs:\n%s", out)
	}
	getObj(ctx, t, dyn, gvr("apps", "deployments"), "istio-system", "istiod")

	// --purge: nothing labelled as install's is left, CRDs included. A CRD
	// the API server is still finishing counts as removed: its
	// customresourcecleanup finalizer retries with its own backoff, which
	// under load ("could not list instances: storage is (re)initializing")
	// takes minutes (operator-framework/operator-controller#1437).
	// A finalizer someone else holds on the mesh ConfigMap keeps it being
	// deleted: the second purge names it and deletes nothing again.
	held := []byte(`{"metadata":{"finalizers":["example.com/hold"]}}`)
	if _, err := cs.CoreV1().ConfigMaps("istio-system").Patch(ctx, "istio", types.MergePatchType, held, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out = must("uninstall", "--purge", "-y")
	if !strings.Contains(out, "removed DaemonSet istio-system/ztunnel\n") || !strings.Contains(out, "removed ClusterRole ztunnel-istio-system\n") {
		t.Errorf("uninstall --purge left the node proxy:\n%s", out)
	}
	if out := must("uninstall", "--purge", "-y"); !strings.Contains(out, "already being removed ConfigMap istio-system/istio\n") || !strings.Contains(out, "nothing installed matches") {
		t.Errorf("purge while the mesh ConfigMap is held:\n%s", out)
	}
	if _, err := cs.CoreV1().ConfigMaps("istio-system").Patch(ctx, "istio", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	purged := time.Now()
	deadline := purged.Add(2 * time.Minute)
	for {
		left, terminating := labelled(ctx, t, dyn)
		if len(left) == 0 {
			t.Logf("uninstall --purge: nothing labelled left after %v; the API server still finishing %v", time.Since(purged).Round(time.Millisecond), terminating)
			break
		}
		if time.Now().After(deadline) {
			for _, name := range left {
				if crd, err := dyn.Resource(gvr("apiextensions.k8s.io", "customresourcedefinitions")).Get(ctx, strings.TrimPrefix(name, "customresourcedefinitions /"), metav1.GetOptions{}); err == nil {
					t.Logf("%s: finalizers %v, status %v", name, crd.GetFinalizers(), crd.Object["status"].(map[string]any)["conditions"])
				}
			}
			t.Fatalf("after uninstall --purge: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := must("uninstall", "--purge", "-y"); !strings.Contains(out, "nothing installed matches") {
		t.Errorf("second purge: %s", out)
	}
}

func gvr(group, resource string) schema.GroupVersionResource {
	for _, k := range install.PruneKinds {
		if k.Group == group && k.Resource == resource {
			return k
		}
	}
	panic("unknown " + resource)
}

func getObj(ctx context.Context, t *testing.T, dyn dynamic.Interface, r schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := dyn.Resource(r).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s %s/%s: %v", r.Resource, ns, name, err)
	}
	return obj
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// labelled lists every object of the kinds install makes that carries
// its managed-by label, and apart the CRDs already being deleted.
func labelled(ctx context.Context, t *testing.T, dyn dynamic.Interface) (left, terminating []string) {
	t.Helper()
	for _, r := range install.PruneKinds {
		list, err := dyn.Resource(r).List(ctx, metav1.ListOptions{LabelSelector: install.LabelManagedBy + "=" + install.ManagedBy})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			name := r.Resource + " " + o.GetNamespace() + "/" + o.GetName()
			if r.Resource == "customresourcedefinitions" && o.GetDeletionTimestamp() != nil {
				terminating = append(terminating, name)
				continue
			}
			left = append(left, name)
		}
	}
	return left, terminating
}

// regexpLine says whether a line of out matches expr.
func regexpLine(out, expr string) bool {
	re := regexp.MustCompile(expr)
	for line := range strings.Lines(out) {
		if re.MatchString(strings.TrimRight(line, "\n ")) {
			return true
		}
	}
	return false
}

// runControlAsIstiod runs sluice control with the installed istiod
// ServiceAccount's token (as its pod would) until what it writes with the
// chart's RBAC is there.
func runControlAsIstiod(t *testing.T, cluster *kubetest.Cluster) {
	t.Helper()
	tok := cluster.ServiceAccountToken(t, "istio-system", "istiod", nil)
	kc := filepath.Join(t.TempDir(), "istiod.kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: istiod, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: istiod}}]
current-context: x
`, cluster.Host, base64.StdEncoding.EncodeToString(cluster.CACertPEM), tok)
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, xdsAddr := testenv.FreeAddr(), testenv.FreeAddr()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"control", "--kubeconfig", kc, "--xds-address", xdsAddr, "--http-address", httpAddr,
			"--injection-address", testenv.FreeAddr(), "--state-dir", t.TempDir()})
		done <- cmd.ExecuteContext(ctx)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("sluice control: %v", err)
		}
	}()
	cs := cluster.Client(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var missing []string
		if resp, err := http.Get("http://" + httpAddr + "/ready"); err != nil || resp.StatusCode != 200 {
			missing = append(missing, "/ready")
		} else {
			resp.Body.Close()
		}
		if _, err := cs.CoreV1().Secrets("istio-system").Get(ctx, "istio-ca-secret", metav1.GetOptions{}); err != nil {
			missing = append(missing, "Secret istio-ca-secret")
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "istio-ca-root-cert", metav1.GetOptions{}); err != nil {
			missing = append(missing, "ConfigMap default/istio-ca-root-cert")
		}
		w, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
		if err != nil || len(w.Webhooks) != 4 || len(w.Webhooks[0].ClientConfig.CABundle) == 0 {
			missing = append(missing, "caBundle of istio-sidecar-injector")
		}
		tag, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-stable", metav1.GetOptions{})
		if err != nil || len(tag.Webhooks) == 0 || len(w.Webhooks) == 0 || !bytes.Equal(tag.Webhooks[0].ClientConfig.CABundle, w.Webhooks[0].ClientConfig.CABundle) {
			missing = append(missing, "caBundle of istio-revision-tag-stable")
		}
		select {
		case err := <-done:
			t.Fatalf("sluice control exited: %v", err)
		default:
		}
		if len(missing) == 0 {
			checkNodeProxyCertificates(t, cluster, xdsAddr)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice control as istiod, after 60s: missing %v", missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
