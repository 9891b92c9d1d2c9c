package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
