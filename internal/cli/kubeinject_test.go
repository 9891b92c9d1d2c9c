package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

func TestKubeInjectCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.yaml")
	out := filepath.Join(dir, "out.yaml")
	yaml := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web
        readinessProbe: {httpGet: {port: 8080, path: /ready}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
`
	if err := os.WriteFile(in, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCommand()
	cmd.SetArgs([]string{"kube-inject", "-f", in, "-o", out, "--image", "sluice:x", "--native-sidecar=false"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"image: sluice:x", "name: istio-proxy", "name: istio-init", "- capture", "/app-health/web/readyz", "kind: Service", "sidecar.istio.io/status"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// The capture is the one init container; the proxy is a container.
	if strings.Count(got, "initContainers:") != 1 || strings.Contains(got, "restartPolicy: Always") {
		t.Errorf("--native-sidecar=false still made the proxy an init container")
	}
	// Errors name the file and the object.
	os.WriteFile(in, []byte(strings.Replace(yaml, "labels: {app: web}}", "labels: {app: web}, annotations: {traffic.sidecar.istio.io/excludeOutboundIPRanges: bad}}", 1)), 0o644)
	cmd = newRootCommand()
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"kube-inject", "-f", in})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "Deployment shop/web") || !strings.Contains(err.Error(), "excludeOutboundIPRanges") {
		t.Errorf("bad annotation: %v", err)
	}
}

// TestKubeInjectMeshConfig: --mesh-config's defaultConfig.concurrency is
// the proxy's --concurrency, a pod's proxy.istio.io/config overrides it,
// and its trustDomain is used unless --trust-domain is given.
func TestKubeInjectMeshConfig(t *testing.T) {
	dir := t.TempDir()
	mesh := filepath.Join(dir, "mesh.yaml")
	in := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(mesh, []byte("trustDomain: example.org\ndefaultConfig:\n  concurrency: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: shop%s}
spec: {containers: [{name: web, image: web}]}
`
	docs := fmt.Sprintf(pod, "a", "") + "---\n" + fmt.Sprintf(pod, "b", `, annotations: {proxy.istio.io/config: "concurrency: 1"}`)
	if err := os.WriteFile(in, []byte(docs), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newRootCommand()
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"kube-inject", "-f", in}, args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	got := strings.Split(run("--mesh-config", mesh), "\n---\n")
	if len(got) != 2 {
		t.Fatalf("%d documents out, want 2", len(got))
	}
	for i, want := range []string{"4", "1"} {
		if c := proxyFlag(t, got[i], "--concurrency"); c != want {
			t.Errorf("pod %d: --concurrency %q, want %q", i, c, want)
		}
		if td := proxyFlag(t, got[i], "--trust-domain"); td != "example.org" {
			t.Errorf("pod %d: --trust-domain %q, want the mesh config's example.org", i, td)
		}
	}
	if td := proxyFlag(t, run("--mesh-config", mesh, "--trust-domain", "given.org"), "--trust-domain"); td != "given.org" {
		t.Errorf("--trust-domain %q: the flag given did not win over the mesh config's", td)
	}
	if c := proxyFlag(t, strings.Split(run(), "\n---\n")[0], "--concurrency"); c != "" {
		t.Errorf("--concurrency %q without a mesh config or annotation", c)
	}
}

// proxyFlag is flag's value in the istio-proxy container of the pod in
// doc ("" if absent).
func proxyFlag(t *testing.T, doc, flag string) string {
	t.Helper()
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(doc), &pod); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if c.Name != inject.ProxyContainerName {
			continue
		}
		if i := slices.Index(c.Args, flag); i >= 0 && i+1 < len(c.Args) {
			return c.Args[i+1]
		}
		return ""
	}
	t.Fatalf("no %s container in:\n%s", inject.ProxyContainerName, doc)
	return ""
}
