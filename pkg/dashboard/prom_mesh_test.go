package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/dashboard"
)

// prometheusBinary finds Prometheus (SLUICE_PROMETHEUS or prometheus on
// PATH): skipped without one, failed under CI=true (.ci/run installs
// Debian's prometheus).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	for _, n := range []string{os.Getenv("SLUICE_PROMETHEUS"), "prometheus"} {
		if n == "" {
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1":
		t.Fatalf("prometheus not found (CI=%s): apt-get install prometheus, or set SLUICE_PROMETHEUS", os.Getenv("CI"))
	}
	t.Skip("prometheus not found: apt-get install prometheus, or set SLUICE_PROMETHEUS (CI=true fails here)")
	return ""
}

// startPrometheus runs a real Prometheus on addr scraping every proxy's
// admin /stats/prometheus each second.
func startPrometheus(t *testing.T, bin, addr string, targets []string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: sluice-proxies
  metrics_path: /stats/prometheus
  static_configs:
  - targets: ['%s']
`, strings.Join(targets, "', '"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	testenv.WaitHTTP(t, "http://"+addr+"/-/ready", 200, 30*time.Second)
}

// TestPrometheusSource: a real Prometheus scrapes the mesh's sidecars
// under traffic and `sluice control --prometheus-address` builds its graph
// from Prometheus' query API: the same health classes and mTLS marks as
// from its own scraping, with the source named "prometheus".
func TestPrometheusSource(t *testing.T) {
	bin := prometheusBinary(t)
	promAddr := testenv.FreeAddr()
	tm := newTestMesh(t, "--prometheus-address", "http://"+promAddr)
	var targets []string
	for _, a := range tm.admins() {
		targets = append(targets, a.admin)
	}
	startPrometheus(t, bin, promAddr, targets)
	tm.background(t)

	g := waitGraph(t, tm.Mesh, wantHealth)
	client := dashboard.WorkloadID("default", "demo-client")
	if e := edge(t, g, client, dashboard.ServiceID(productHost)); e.MTLS != "mutual_tls" || e.RPS <= 0 || e.P99 == nil {
		t.Errorf("client -> product-service from Prometheus: %+v", e.Stats)
	}
	if e := edge(t, g, client, dashboard.ServiceID(ratingsHost)); e.MTLS != "none" {
		t.Errorf("client -> ratings from Prometheus: %+v", e.Stats)
	}
	var info dashboard.Info
	getJSON(t, tm.URL("/dashboard/api/info"), &info)
	var ans graphAnswer
	getJSON(t, tm.URL("/dashboard/api/graph"), &ans)
	if info.MetricsSource != dashboard.SourcePrometheus || ans.Source != dashboard.SourcePrometheus {
		t.Errorf("source: info %+v, graph %s", info, ans.Source)
	}

	// The same source used directly: ratings' p50 from
	// istio_request_duration_milliseconds_bucket is in the (25, 50] bucket.
	p, err := dashboard.NewPrometheus("http://" + promAddr)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := p.Traffic(context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := edge(t, dashboard.BuildGraph(tr), dashboard.ServiceID(ratingsHost), dashboard.WorkloadID("default", tm.ratings.Name))
	if r.P50 == nil || *r.P50 <= 25 || *r.P50 > 50 {
		t.Errorf("ratings p50 from Prometheus: %v", deref(r.P50))
	}
}
