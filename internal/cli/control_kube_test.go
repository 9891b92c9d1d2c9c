package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubeRESTConfig checks which API server control reads: --kubeconfig,
// the in-cluster config in a pod with no --config-dir, or none.
func TestKubeRESTConfig(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfg, err := kubeRESTConfig(kubeconfig, "")
	if err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Fatalf("--kubeconfig: %v, %v", cfg, err)
	}
	if _, err := kubeRESTConfig(filepath.Join(t.TempDir(), "missing"), ""); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	if cfg, err := kubeRESTConfig("", "dir"); cfg != nil || err != nil {
		t.Errorf("folder only: %v, %v; want no API server", cfg, err)
	}
	if _, err := kubeRESTConfig("", ""); err == nil || !strings.Contains(err.Error(), "--config-dir, --kubeconfig") {
		t.Errorf("nothing given: %v", err)
	}
	// In a pod: the in-cluster config is tried (here it fails: no service
	// account token is mounted), unless a folder is given.
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if _, err := kubeRESTConfig("", ""); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in a pod: %v, want the in-cluster config tried", err)
	}
	if cfg, err := kubeRESTConfig("", "dir"); cfg != nil || err != nil {
		t.Errorf("in a pod with a folder: %v, %v; want the folder only", cfg, err)
	}
}
