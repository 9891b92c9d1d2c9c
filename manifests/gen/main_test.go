package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCRDFilesCurrent: the chart's CRD files are what gen makes from the
// istio.io/api and gateway-api modules go.mod pins now (run
// `go generate ./manifests` after bumping either).
func TestCRDFilesCurrent(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"crd-istio.gen.yaml", "crd-gateway-api.gen.yaml"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "charts", "sluice", "files", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("manifests/charts/sluice/files/%s is stale: run go generate ./manifests", f)
		}
		if !bytes.Contains(want, []byte("app.kubernetes.io/managed-by: sluice")) {
			t.Errorf("%s: CRDs not labelled", f)
		}
	}
}
