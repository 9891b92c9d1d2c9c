package kubetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallIstioCRDs installs every Istio CRD, from the istio.io/api module
// the build uses (kubernetes/customresourcedefinitions.gen.yaml), and
// waits until each is Established.
func (c *Cluster) InstallIstioCRDs(t testing.TB) {
	t.Helper()
	c.InstallCRDFiles(t, filepath.Join(moduleDir(t, "istio.io/api"), "kubernetes", "customresourcedefinitions.gen.yaml"))
}

// InstallGatewayAPICRDs installs Gateway API's standard channel CRDs from
// the sigs.k8s.io/gateway-api module the build uses.
func (c *Cluster) InstallGatewayAPICRDs(t testing.TB) {
	t.Helper()
	dir := filepath.Join(moduleDir(t, "sigs.k8s.io/gateway-api"), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("kubetest: no Gateway API CRDs in %s: %v", dir, err)
	}
	c.InstallCRDFiles(t, files...)
}

// InstallCRDFiles creates the CustomResourceDefinitions in the YAML files
// (other kinds in them are skipped) and waits until each is Established.
func (c *Cluster) InstallCRDFiles(t testing.TB, files ...string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var names []string
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			if _, err := dyn.Resource(crdResource).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				t.Fatalf("kubetest: create CRD %s: %v", obj.GetName(), err)
			}
			names = append(names, obj.GetName())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for !established(ctx, dyn, name) {
			if time.Now().After(deadline) {
				t.Fatalf("kubetest: CRD %s not Established within 30s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func established(ctx context.Context, dyn dynamic.Interface, name string) bool {
	crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// readObjects reads every object of a multi-document YAML file.
func readObjects(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeObjects(data)
	if err != nil {
		t.Fatalf("kubetest: %s: %v", path, err)
	}
	return out
}

// moduleDir is where the build's copy of module mod is.
func moduleDir(t testing.TB, mod string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	if err != nil {
		t.Fatalf("kubetest: go list -m %s: %v", mod, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatalf("kubetest: module %s is not downloaded", mod)
	}
	return dir
}
