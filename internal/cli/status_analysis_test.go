package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// `sluice status` shows the control plane's analysis of the config in
// force, per resource, and clears it once the config is fixed.
func TestStatusShowsAnalysis(t *testing.T) {
	dir := t.TempDir()
	const backend = `apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80}]
`
	sidecar := func(host string) string {
		return "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\nspec:\n  egress:\n  - hosts: [" + host + "]\n"
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("backend.yaml", backend)
	write("sidecar.yaml", sidecar(`"prod/backend.default.svc.cluster.local"`))
	httpAddr := testenv.FreeAddr()
	c, err := controlplane.New(controlplane.Options{ConfigDir: dir, Mesh: meshconfig.Default(),
		XDSAddress: testenv.FreeAddr(), HTTPAddress: httpAddr, Logger: slog.New(slog.DiscardHandler),
		Debounce: controlplane.DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitHTTP(t, "http://"+httpAddr+"/ready", 200, 10*time.Second)

	want := []string{
		"ANALYSIS (config version",
		"1 message(s) on 1 resource(s)",
		"  Sidecar default/default\n",
		`Warning [SLU0007] (` + filepath.Join(dir, "sidecar.yaml") + `) Egress host "prod/backend.default.svc.cluster.local" matches no service`,
		`Did you mean "default/backend.default.svc.cluster.local"?`,
	}
	var out string
	if err := testenv.Eventually(func() error {
		out, err = runStatus(t, httpAddr)
		if err != nil {
			return fmt.Errorf("sluice status: %v", err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("output lacks %q", w)
			}
		}
		return nil
	}, 10*time.Second); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}

	out, err = runStatus(t, httpAddr, "--json")
	if err != nil {
		t.Fatalf("sluice status --json: %v\n%s", err, out)
	}
	var st struct {
		Analysis controlplane.AnalysisSummary `json:"analysis"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if list := st.Analysis.ByResource["Sidecar default/default"]; len(list) != 1 || list[0].Code != "SLU0007" {
		t.Errorf("--json analysis: %+v", st.Analysis)
	}

	write("sidecar.yaml", sidecar(`"default/backend.default.svc.cluster.local"`))
	if err := testenv.Eventually(func() error {
		out, err = runStatus(t, httpAddr)
		if err != nil || !strings.Contains(out, "no problems found") || strings.Contains(out, "SLU0007") {
			return fmt.Errorf("not cleared (err %v)", err)
		}
		return nil
	}, 10*time.Second); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
}
