// Package demo is `sluice demo`: a local mesh on this machine, no cluster
// and no root, showing a canary release enforced from Istio YAML. It starts
// real child processes of the sluice binary: the control plane, two
// versions of product-service (echo apps with sidecars) and a client
// sidecar, then measures the split and keeps running for the user to try.
package demo

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/sluice-mesh/sluice/pkg/echo"
)

//go:embed config/*.yaml
var configFS embed.FS

// Options configure the demo.
type Options struct {
	// Binary is the sluice executable to start children from.
	Binary string
	// Dir receives the config folder and the logs.
	Dir string
	// Requests is how many requests measure the split.
	Requests int
	// Wait keeps the mesh running after the measurement until ctx ends.
	Wait bool
	// TrafficRate is how many requests per second the client keeps
	// sending while the demo waits, so the dashboard shows live traffic
	// (0: none).
	TrafficRate int
	Out         io.Writer
}

// ports the demo uses; each falls back to a free port when taken.
type ports struct {
	XDS, ControlHTTP, ClientOutbound, ClientAdmin int
	V1App, V1Inbound, V1Admin                     int
	V2App, V2Inbound, V2Admin                     int
}

// Result is what the measurement saw.
type Result struct {
	Counts   map[string]int
	Beta     map[string]int
	Failures int
	// TraceURL is the dashboard page of a traced request, printed by the
	// demo; TraceErr says why there is none.
	TraceURL string
	TraceErr error
}

// Run starts the mesh, measures, and (with Wait) serves until ctx ends.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Requests <= 0 {
		opts.Requests = 1000
	}
	p, err := pickPorts()
	if err != nil {
		return nil, err
	}
	cfgDir := filepath.Join(opts.Dir, "config")
	logDir := filepath.Join(opts.Dir, "logs")
	// The demo's own control plane state: its bootstrap token (0600) and
	// trust bundle, which its sidecars present and verify with.
	stateDir := filepath.Join(opts.Dir, "state")
	for _, d := range []string{cfgDir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := writeConfig(cfgDir, p); err != nil {
		return nil, err
	}
	meshFile, err := writeMeshConfig(opts.Dir)
	if err != nil {
		return nil, err
	}
	out := opts.Out
	kids := &children{bin: opts.Binary, logDir: logDir}
	defer kids.stopAll()

	fmt.Fprintf(out, "sluice demo: a local mesh from Istio YAML in %s\n\n", cfgDir)
	steps := []struct {
		name string
		args []string
	}{
		{"control", []string{"control", "--config-dir", cfgDir, "--xds-address", addr(p.XDS), "--http-address", addr(p.ControlHTTP),
			"--state-dir", stateDir, "--ca-dir", filepath.Join(opts.Dir, "ca"), "--mesh-config", meshFile}},
		{"product-service-v1", []string{"echo", "--address", addr(p.V1App), "--service", "product-service", "--version", "v1", "--pod", "product-service-v1"}},
		{"product-service-v2", []string{"echo", "--address", addr(p.V2App), "--service", "product-service", "--version", "v2", "--pod", "product-service-v2"}},
		{"sidecar-product-service-v1", sidecarArgs("product-service-v1", "app=product-service,version=v1,security.istio.io/tlsMode=istio", p.XDS, p.V1Admin, 0, p.V1Inbound, p.V1App, stateDir)},
		{"sidecar-product-service-v2", sidecarArgs("product-service-v2", "app=product-service,version=v2,security.istio.io/tlsMode=istio", p.XDS, p.V2Admin, 0, p.V2Inbound, p.V2App, stateDir)},
		{"sidecar-demo-client", sidecarArgs("demo-client", "app=demo-client", p.XDS, p.ClientAdmin, p.ClientOutbound, 0, 0, stateDir)},
	}
	for _, s := range steps {
		if err := kids.start(ctx, s.name, s.args...); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "  started %-28s %s\n", s.name, describe(s.args))
	}
	wait := []string{
		"http://" + addr(p.ControlHTTP) + "/ready", "http://" + addr(p.V1Admin) + "/ready",
		"http://" + addr(p.V2Admin) + "/ready", "http://" + addr(p.ClientAdmin) + "/ready",
	}
	for _, u := range wait {
		if err := waitOK(ctx, u, 20*time.Second); err != nil {
			return nil, fmt.Errorf("demo: %w (logs in %s)", err, logDir)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	target := "http://" + addr(p.ClientOutbound) + "/"
	if err := waitRouted(ctx, client, target, 20*time.Second); err != nil {
		return nil, fmt.Errorf("demo: %w (logs in %s)", err, logDir)
	}
	fmt.Fprintf(out, "\nMesh dashboard (service graph, services, workloads, config, proxies, traces): %s\n", dashboardURL(p))
	fmt.Fprintf(out, "\nSending %d requests to product-service through the client's sidecar:\n", opts.Requests)
	res := &Result{Counts: map[string]int{}, Beta: map[string]int{}}
	bar := newProgress(out, opts.Requests)
	for i := 0; i < opts.Requests; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		v, err := call(client, target, nil)
		if err != nil {
			res.Failures++
		} else {
			res.Counts[v]++
		}
		bar.set(i + 1)
	}
	bar.done()
	printSplit(out, res.Counts, opts.Requests)
	for i := 0; i < 20; i++ {
		v, err := call(client, target, map[string]string{"user-group": "beta-testers"})
		if err != nil {
			res.Failures++
			continue
		}
		res.Beta[v]++
	}
	fmt.Fprintf(out, "\nWith header user-group: beta-testers (20 requests): %s\n", formatCounts(res.Beta))
	if res.Failures > 0 {
		fmt.Fprintf(out, "%d requests failed; see %s\n", res.Failures, logDir)
	}
	// Every request was traced (config/tracing.yaml) into the control
	// plane's collector.
	if link, err := recentTrace(ctx, p, 5*time.Second); err != nil {
		res.TraceErr = err
		fmt.Fprintf(out, "\nTraces: %s (%v; see %s)\n", tracesURL(p), err, logDir)
	} else {
		res.TraceURL = link
		fmt.Fprintf(out, "\nTrace of a request (client sidecar -> product-service): %s\nAll recent traces: %s\n", link, tracesURL(p))
	}
	if !opts.Wait {
		return res, nil
	}
	if opts.TrafficRate > 0 {
		go liveTraffic(ctx, client, target, opts.TrafficRate)
		fmt.Fprintf(out, "\nLive traffic: %d requests/s from demo-client to product-service (1 in 10 as a beta tester).\n", opts.TrafficRate)
	}
	printTry(out, p, cfgDir, logDir)
	<-ctx.Done()
	fmt.Fprintln(out, "\nstopping the demo mesh")
	return res, nil
}

func pickPorts() (ports, error) {
	var p ports
	var err error
	for _, f := range []struct {
		dst  *int
		pref int
	}{
		{&p.XDS, 15010}, {&p.ControlHTTP, 15014}, {&p.ClientOutbound, 15001}, {&p.ClientAdmin, 15000},
		{&p.V1App, 9081}, {&p.V1Inbound, 15106}, {&p.V1Admin, 15100},
		{&p.V2App, 9082}, {&p.V2Inbound, 15206}, {&p.V2Admin, 15200},
	} {
		if *f.dst, err = port(f.pref); err != nil {
			return p, err
		}
	}
	return p, nil
}

func sidecarArgs(name, labels string, xds, admin, outbound, inbound, app int, stateDir string) []string {
	args := []string{"proxy", "--type", "sidecar", "--name", name, "--namespace", "default", "--labels", labels,
		"--xds-address", addr(xds), "--admin-address", addr(admin),
		"--token-file", filepath.Join(stateDir, "bootstrap-token"), "--ca-root-file", filepath.Join(stateDir, "root-cert.pem")}
	if outbound != 0 {
		args = append(args, "--outbound-address", addr(outbound))
	} else {
		args = append(args, "--outbound-address", "")
	}
	if inbound != 0 {
		args = append(args, "--inbound-address", addr(inbound), "--app-address", addr(app))
	}
	return args
}

func describe(args []string) string {
	for i, a := range args {
		switch a {
		case "--config-dir":
			return "config " + args[i+1]
		case "--address":
			return "app on " + args[i+1]
		case "--inbound-address":
			return "inbound " + args[i+1] + " -> app " + args[i+3]
		case "--outbound-address":
			if args[i+1] != "" {
				return "outbound " + args[i+1]
			}
		}
	}
	return ""
}

func writeConfig(dir string, p ports) error {
	entries, err := configFS.ReadDir("config")
	if err != nil {
		return err
	}
	for _, e := range entries {
		raw, err := configFS.ReadFile("config/" + e.Name())
		if err != nil {
			return err
		}
		tpl, err := template.New(e.Name()).Parse(string(raw))
		if err != nil {
			return fmt.Errorf("demo: %s: %w", e.Name(), err)
		}
		var buf bytes.Buffer
		if err := tpl.Execute(&buf, p); err != nil {
			return fmt.Errorf("demo: %s: %w", e.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

func waitOK(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}

// waitRouted waits until the client's sidecar routes product-service.
func waitRouted(ctx context.Context, c *http.Client, target string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if _, err := call(c, target, nil); err == nil {
			return nil
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("product-service not reachable through the client sidecar after %s: %v", timeout, last)
}

// call sends one request for product-service and returns the version that answered.
func call(c *http.Client, target string, headers map[string]string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	req.Host = "product-service:9080"
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var er echo.Response
	if err := json.Unmarshal(body, &er); err != nil {
		return "", errors.New("answer is not from an echo backend")
	}
	return er.Version, nil
}

// dashboardURL is the control plane's mesh dashboard.
func dashboardURL(p ports) string { return "http://" + addr(p.ControlHTTP) + "/dashboard/" }

// liveTraffic sends rate requests a second for product-service until ctx
// ends, every tenth as a beta tester, so the dashboard has something to
// show; failures are what the dashboard is for, so they are not printed.
func liveTraffic(ctx context.Context, c *http.Client, target string, rate int) {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var headers map[string]string
		if i%10 == 9 {
			headers = map[string]string{"user-group": "beta-testers"}
		}
		call(c, target, headers)
	}
}
