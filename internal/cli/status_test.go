package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/jwks"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// runStatus runs `sluice status` with args against addr and returns its
// output and error.
func runStatus(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	cmd := newStatusCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--address", addr}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// `sluice status` lists what the control plane accepts and does not
// enforce, read over HTTP from a real control plane.
func TestStatusListsNotEnforced(t *testing.T) {
	dir := t.TempDir()
	policy := `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: deny-all, namespace: shop}
spec: {accessLogging: [{}]}
`
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := testenv.FreeAddr()
	c, err := controlplane.New(controlplane.Options{ConfigDir: dir, Mesh: meshconfig.Default(),
		XDSAddress: testenv.FreeAddr(), HTTPAddress: httpAddr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitHTTP(t, "http://"+httpAddr+"/ready", 200, 10*time.Second)

	out, err := runStatus(t, httpAddr)
	if err != nil {
		t.Fatalf("sluice status: %v\n%s", err, out)
	}
	want := "NOT ENFORCED extensions.istio.io/WasmPlugin shop/deny-all (" + filepath.Join(dir, "policy.yaml")
	if !strings.Contains(out, want) || !strings.Contains(out, "Wasm plugins are not run") {
		t.Errorf("output lacks %q and its reason:\n%s", want, out)
	}

	out, err = runStatus(t, httpAddr, "--json")
	if err != nil {
		t.Fatalf("sluice status --json: %v\n%s", err, out)
	}
	var st struct {
		NotEnforced []config.NotEnforced `json:"not_enforced"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(st.NotEnforced) != 1 || st.NotEnforced[0].Kind != "extensions.istio.io/WasmPlugin" ||
		st.NotEnforced[0].Name != "deny-all" || !strings.Contains(st.NotEnforced[0].File, "policy.yaml") {
		t.Errorf("--json not_enforced: %+v", st.NotEnforced)
	}
}

// A key set the control plane could not fetch is named, with its issuer
// and error, so users know why that issuer's tokens are refused.
func TestStatusPrintsJwksFailures(t *testing.T) {
	var b strings.Builder
	printJwksFailures(&b, []jwks.Failure{{Issuer: "https://issuer.example", JwksURI: "https://issuer.example/jwks",
		Error: "connection refused", Since: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)}})
	want := "JWKS UNAVAILABLE  issuer https://issuer.example  https://issuer.example/jwks: connection refused (since 2026-12-03T14:00:00Z); its tokens are refused\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
