// Command sidecar measures what one sluice sidecar adds to a request, the
// way Istio measures Envoy: fortio at a fixed QPS over a few connections,
// 1 KB payloads, first straight to the backend, then through the sidecar,
// in the same run. It prints latency percentiles, their ratio against the
// direct baseline, and the sidecar's CPU and memory.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	sluice, fortio string
	qps, conns     int
	duration       time.Duration
	payload        int
}

func main() {
	var o options
	flag.StringVar(&o.sluice, "sluice", "bin/sluice", "sluice binary")
	flag.StringVar(&o.fortio, "fortio", "fortio", "fortio binary")
	flag.IntVar(&o.qps, "qps", 1000, "requests per second (Istio's method: 1000)")
	flag.IntVar(&o.conns, "c", 16, "connections (Istio's method: 16)")
	flag.DurationVar(&o.duration, "t", 20*time.Second, "duration of each run")
	flag.IntVar(&o.payload, "payload", 1024, "request and response payload bytes")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type proc struct{ cmd *exec.Cmd }

func start(bin string, logDir, name string, args ...string) (*proc, error) {
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{cmd: cmd}, nil
}

func (p *proc) stop() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }

// cpuSeconds is the process's user+system CPU time so far.
func (p *proc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func (p *proc) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitOK(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config")
	os.MkdirAll(cfg, 0o755)
	echoPort, xds, ctl, outbound, admin := freePort(), freePort(), freePort(), freePort(), freePort()
	yaml := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: bench}
spec:
  selector: {app: bench}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: bench-0}
spec:
  address: 127.0.0.1
  labels: {app: bench}
  ports: {http: %d}
`, echoPort)
	if err := os.WriteFile(filepath.Join(cfg, "bench.yaml"), []byte(yaml), 0o644); err != nil {
		return err
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	echo, err := start(o.sluice, dir, "echo", "echo", "--address", addr(echoPort), "--service", "bench")
	if err != nil {
		return err
	}
	defer echo.stop()
	state := filepath.Join(dir, "state")
	control, err := start(o.sluice, dir, "control", "control", "--config-dir", cfg, "--xds-address", addr(xds), "--http-address", addr(ctl),
		"--state-dir", state)
	if err != nil {
		return err
	}
	defer control.stop()
	sidecar, err := start(o.sluice, dir, "sidecar", "proxy", "--name", "bench-client", "--xds-address", addr(xds),
		"--token-file", filepath.Join(state, "bootstrap-token"), "--outbound-address", addr(outbound), "--admin-address", addr(admin), "--log-level", "warn")
	if err != nil {
		return err
	}
	defer sidecar.stop()
	if err := waitOK("http://" + addr(admin) + "/ready"); err != nil {
		return err
	}
	path := "/?size=" + strconv.Itoa(o.payload)
	fmt.Printf("fortio: -qps %d -c %d -t %s, %d B request and response payloads; logs in %s\n\n", o.qps, o.conns, o.duration, o.payload, dir)
	direct, err := fortio(o, dir, "direct", "http://"+addr(echoPort)+path, "")
	if err != nil {
		return err
	}
	cpu0 := sidecar.cpuSeconds()
	viaSidecar, err := fortio(o, dir, "sidecar", "http://"+addr(outbound)+path, "bench:8080")
	if err != nil {
		return err
	}
	cpu := (sidecar.cpuSeconds() - cpu0) / o.duration.Seconds()
	results := []*result{direct, viaSidecar}
	peer, err := runNginx(o, dir, addr(echoPort))
	if err != nil {
		fmt.Printf("(nginx peer skipped: %v)\n", err)
	} else if peer != nil {
		results = append(results, peer)
	}
	fmt.Printf("%-10s %9s %9s %9s %9s %8s %10s\n", "path", "qps", "p50 ms", "p90 ms", "p99 ms", "errors", "proxy cpu")
	for _, r := range results {
		c := ""
		switch r.name {
		case "sidecar":
			c = fmt.Sprintf("%.1f%%", cpu*100)
		case "nginx":
			c = fmt.Sprintf("%.1f%%", r.cpu*100)
		}
		fmt.Printf("%-10s %9.1f %9.3f %9.3f %9.3f %8d %10s\n", r.name, r.qps, r.p50*1e3, r.p90*1e3, r.p99*1e3, r.errors, c)
	}
	if peer != nil {
		fmt.Printf("added by nginx (same run): p50 +%.3f ms, p90 +%.3f ms, p99 +%.3f ms\n",
			(peer.p50-direct.p50)*1e3, (peer.p90-direct.p90)*1e3, (peer.p99-direct.p99)*1e3)
	}
	fmt.Printf("\nadded by the sidecar: p50 +%.3f ms (x%.2f), p90 +%.3f ms (x%.2f), p99 +%.3f ms (x%.2f)\n",
		(viaSidecar.p50-direct.p50)*1e3, viaSidecar.p50/direct.p50,
		(viaSidecar.p90-direct.p90)*1e3, viaSidecar.p90/direct.p90,
		(viaSidecar.p99-direct.p99)*1e3, viaSidecar.p99/direct.p99)
	fmt.Printf("sidecar: %.1f%% of one core at %.0f qps (%.1f µs CPU per request), RSS %.1f MiB\n",
		cpu*100, viaSidecar.qps, cpu/viaSidecar.qps*1e6, sidecar.rssMiB())
	return nil
}

type result struct {
	cpu           float64 // share of one core used by the proxy, for peers
	name          string
	qps           float64
	p50, p90, p99 float64
	errors        int
}

func fortio(o options, dir, name, url, host string) (*result, error) {
	out := filepath.Join(dir, name+".json")
	args := []string{"load", "-qps", strconv.Itoa(o.qps), "-c", strconv.Itoa(o.conns), "-t", o.duration.String(),
		"-payload-size", strconv.Itoa(o.payload), "-json", out, "-p", "50,90,99", "-quiet"}
	if host != "" {
		args = append(args, "-H", "Host: "+host)
	}
	args = append(args, url)
	cmd := exec.Command(o.fortio, args...)
	logf, err := os.Create(filepath.Join(dir, "fortio-"+name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("fortio %s: %w (see %s)", name, err, logf.Name())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	var r struct {
		ActualQPS         float64
		RetCodes          map[string]int
		DurationHistogram struct {
			Percentiles []struct {
				Percentile float64
				Value      float64
			}
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("fortio %s output: %w", name, err)
	}
	res := &result{name: name, qps: r.ActualQPS}
	for code, n := range r.RetCodes {
		if code != "200" {
			res.errors += n
		}
	}
	for _, p := range r.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			res.p50 = p.Value
		case 90:
			res.p90 = p.Value
		case 99:
			res.p99 = p.Value
		}
	}
	return res, nil
}

// runNginx measures nginx as a reverse proxy in front of the same backend,
// as a peer baseline in the same run; nil when nginx is not installed.
func runNginx(o options, dir, backend string) (*result, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, nil
	}
	port := freePort()
	conf := fmt.Sprintf(`daemon off;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-body;
  proxy_temp_path %[1]s/nginx-proxy;
  upstream backend { server %[2]s; keepalive 64; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`, dir, backend, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", path, "-p", dir)
	logf, _ := os.Create(filepath.Join(dir, "nginx.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); cmd.Wait() }()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/?size=" + strconv.Itoa(o.payload)
	if err := waitOK(url); err != nil {
		return nil, err
	}
	cpu0 := groupCPU(cmd.Process.Pid)
	r, err := fortio(o, dir, "nginx", url, "")
	if err != nil {
		return nil, err
	}
	r.cpu = (groupCPU(cmd.Process.Pid) - cpu0) / o.duration.Seconds()
	return r, nil
}

// groupCPU sums the CPU seconds of a process group (nginx's master and
// workers).
func groupCPU(pgid int) float64 {
	entries, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(fields) < 13 || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		total += (ut + st) / 100
	}
	return total
}
