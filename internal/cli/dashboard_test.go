package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// `sluice dashboard` prints the mesh dashboard's URL, which a running
// control plane serves (page, script, API with its sidecar); opens it
// with xdg-open only with --browser; names the add-ons' flags and env
// when they are not configured.
func TestDashboardCommand(t *testing.T) {
	for _, env := range []string{"SLUICE_PROMETHEUS_ADDRESS", "SLUICE_GRAFANA_ADDRESS", "SLUICE_ZIPKIN_ADDRESS"} {
		t.Setenv(env, "")
	}
	m := startInspectMesh(t)
	out, err := run(t, "dashboard", "--address", m.http)
	want := "http://" + m.http + "/dashboard/"
	if err != nil || strings.TrimSpace(out) != want {
		t.Fatalf("dashboard: want %s, got %q %v", want, out, err)
	}
	for path, has := range map[string]string{"": "sluice mesh dashboard", "app.js": "hashchange", "style.css": "--failure",
		"api/proxies": `"name": "productpage.default"`} {
		body := get(t, want+path)
		if !strings.Contains(strings.ReplaceAll(body, `":"`, `": "`), has) {
			t.Errorf("%s%s: no %q in %.300s", want, path, has, body)
		}
	}

	_, err = run(t, "dashboard", "prometheus", "--address", m.http)
	if err == nil || !strings.Contains(err.Error(), "--prometheus-address") || !strings.Contains(err.Error(), "SLUICE_PROMETHEUS_ADDRESS") {
		t.Errorf("prometheus not configured: want an error naming the flag and env, got %v", err)
	}
	if out, err := run(t, "dashboard", "zipkin", "--zipkin-address", "127.0.0.1:9411"); err != nil || strings.TrimSpace(out) != "http://127.0.0.1:9411/zipkin/" {
		t.Errorf("zipkin: %q %v", out, err)
	}
	t.Setenv("SLUICE_GRAFANA_ADDRESS", "http://127.0.0.1:3000")
	if out, err := run(t, "dashboard", "grafana"); err != nil || strings.TrimSpace(out) != "http://127.0.0.1:3000" {
		t.Errorf("grafana from env: %q %v", out, err)
	}
	if _, err := run(t, "dashboard", "kiali"); err == nil {
		t.Error("an unknown dashboard is accepted")
	}

	// --browser runs xdg-open with the URL (here a script on PATH that
	// records its argument).
	bin := t.TempDir()
	opened := filepath.Join(bin, "opened")
	script := "#!/bin/sh\necho \"$1\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if _, err := run(t, "dashboard", "mesh", "--address", m.http, "--browser"); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Eventually(func() error {
		b, err := os.ReadFile(opened)
		if err != nil || strings.TrimSpace(string(b)) != want {
			return err
		}
		return nil
	}, 5*time.Second); err != nil {
		t.Errorf("xdg-open not run with %s: %v", want, err)
	}
}

// `sluice dashboard prometheus` with no flag names the Prometheus the
// control plane's dashboard was given.
func TestDashboardPrometheusFromControl(t *testing.T) {
	t.Setenv("SLUICE_PROMETHEUS_ADDRESS", "")
	httpAddr := testenv.FreeAddr()
	c, err := controlplane.New(controlplane.Options{ConfigDir: t.TempDir(), Mesh: meshconfig.Default(),
		XDSAddress: testenv.FreeAddr(), HTTPAddress: httpAddr, Logger: slog.New(slog.DiscardHandler),
		Security:  controlplane.SecurityOptions{StateDir: t.TempDir()},
		Dashboard: controlplane.DashboardOptions{PrometheusAddress: "http://127.0.0.1:9090"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitHTTP(t, "http://"+httpAddr+"/ready", 200, 10*time.Second)
	if out, err := run(t, "dashboard", "prometheus", "--address", httpAddr); err != nil || strings.TrimSpace(out) != "http://127.0.0.1:9090" {
		t.Errorf("prometheus from the control plane: %q %v", out, err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	return string(b)
}
