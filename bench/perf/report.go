package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// result is one path and protocol's figures. Latency is what fortio saw
// at the fixed rate; Added is that minus direct's in the same run.
type result struct {
	Path     string  `json:"path"`
	Protocol string  `json:"protocol"`
	Proxies  int     `json:"proxies"`
	QPS      float64 `json:"qps"`
	Latency  latency `json:"latency_s"`
	Added    latency `json:"added_s"`
	Errors   int     `json:"errors"`
	MaxRPS   float64 `json:"max_rps"`
	// MaxRatio is MaxRPS over direct's.
	MaxRatio float64 `json:"max_rps_vs_direct"`
	// MaxCPU is the proxies' cores in use during the maximum-rate run
	// (each proxy is pinned to one), RPSPerCore MaxRPS over it: what one
	// core of the proxy serves, whether or not the load side was the
	// limit.
	MaxCPU     float64 `json:"max_rps_proxy_cores"`
	RPSPerCore float64 `json:"rps_per_proxy_core"`
	// CPUPer1k is the proxies' CPU (cores) per 1000 requests/s at the
	// fixed rate, summed over the path's proxies.
	CPUPer1k float64 `json:"vcpu_per_1k_rps"`
	// RSSIdle and RSSLoad are the proxies' summed resident memory before
	// any traffic and at its peak during the fixed-rate run, MiB.
	RSSIdle float64 `json:"rss_idle_mib"`
	RSSLoad float64 `json:"rss_load_mib"`
	// AnonIdle and AnonLoad are the anonymous part of RSS (RssAnon):
	// what each more proxy of the same binary costs, its file pages
	// being shared through the page cache.
	AnonIdle float64 `json:"anon_idle_mib"`
	AnonLoad float64 `json:"anon_load_mib"`
}

// tcpResult is a TCP passthrough row: bytes/s both ways, its ratio to
// direct's, and the proxy's CPU seconds per GB carried.
type tcpResult struct {
	Path        string  `json:"path"`
	BytesPerSec float64 `json:"bytes_per_s"`
	Ratio       float64 `json:"vs_direct"`
	CPUPerGB    float64 `json:"cpu_s_per_gb"`
	Errors      int     `json:"errors"`
}

// runOptions are the run's settings as the report records them.
type runOptions struct {
	QPS         int     `json:"qps"`
	Connections int     `json:"connections"`
	Seconds     float64 `json:"duration_s"`
	Payload     int     `json:"payload_bytes"`
	ProxyCPU    string  `json:"proxy_cpu"`
	LoadCPU     string  `json:"load_cpu"`
}

type report struct {
	Started  time.Time   `json:"started"`
	Host     string      `json:"host"`
	CPUs     int         `json:"cpus"`
	Kernel   string      `json:"kernel"`
	Revision string      `json:"revision"`
	Options  runOptions  `json:"options"`
	Results  []result    `json:"results"`
	TCP      []tcpResult `json:"tcp"`
}

func newReport(o options) *report {
	r := &report{Started: time.Now().UTC()}
	r.Host, r.CPUs, r.Kernel = machine()
	// The tree the bench (and bin/sluice, built by make bench) came from.
	if b, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		r.Revision = strings.TrimSpace(string(b))
	}
	r.Options = runOptions{QPS: o.qps, Connections: o.conns, Seconds: o.duration.Seconds(), Payload: o.payload, ProxyCPU: o.proxyCPU, LoadCPU: o.loadCPU}
	return r
}

// write prints the markdown table and stores it and the JSON in dir as
// perf-<time>.md/.json and latest.md/.json.
func (r *report) write(w io.Writer, dir string) error {
	var md strings.Builder
	r.markdown(&md)
	fmt.Fprint(w, "\n", md.String())
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	stamp := r.Started.Format("20060102-150405")
	for _, f := range []struct {
		name string
		b    []byte
	}{{"perf-" + stamp + ".json", js}, {"latest.json", js}, {"perf-" + stamp + ".md", []byte(md.String())}, {"latest.md", []byte(md.String())}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nwrote %s and %s\n", filepath.Join(dir, "perf-"+stamp+".json"), filepath.Join(dir, "latest.md"))
	return nil
}

func ms(s float64) string { return fmt.Sprintf("%+.3f", s*1e3) }

func (r *report) markdown(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "fortio -qps %d -c %d, %d B payloads, %g s per point; proxies on CPU %s (one worker each), load on CPU %s; %s, %d CPUs, %s, sluice %s\n\n",
		o.QPS, o.Connections, o.Payload, o.Seconds, o.ProxyCPU, o.LoadCPU, r.Host, r.CPUs, r.Kernel, r.Revision)
	fmt.Fprintln(w, "| path | proto | added p50 | p90 | p99 | p99.9 | max (ms) | max rps (vs direct) | proxy cores at max | rps per proxy core | vCPU per 1k rps | RSS idle / at load (MiB) | anon idle / at load | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range r.Results {
		if x.Path == "direct" {
			fmt.Fprintf(w, "| direct | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | | | | | | %d |\n", x.Protocol,
				x.Latency.P50*1e3, x.Latency.P90*1e3, x.Latency.P99*1e3, x.Latency.P999*1e3, x.Latency.Max*1e3, x.MaxRPS, x.Errors)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.0f (%.2f) | %.2f | %.0f | %.3f | %.1f / %.1f | %.1f / %.1f | %d |\n", x.Path, x.Protocol,
			ms(x.Added.P50), ms(x.Added.P90), ms(x.Added.P99), ms(x.Added.P999), ms(x.Added.Max), x.MaxRPS, x.MaxRatio, x.MaxCPU, x.RPSPerCore, x.CPUPer1k,
			x.RSSIdle, x.RSSLoad, x.AnonIdle, x.AnonLoad, x.Errors)
	}
	fmt.Fprintln(w, "\n(direct rows: absolute latency in ms; the others: latency added over direct in the same run. Memory sums the path's proxies;"+
		" anon is RSS less the binary's file pages, which every process of the same binary shares through the page cache.)")
	if len(r.TCP) > 0 {
		fmt.Fprintln(w, "\n| TCP passthrough | MB/s (both ways) | vs direct | CPU s per GB | errors |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, t := range r.TCP {
			fmt.Fprintf(w, "| %s | %.1f | %.2f | %.2f | %d |\n", t.Path, t.BytesPerSec/1e6, t.Ratio, t.CPUPerGB, t.Errors)
		}
	}
}

// compareFiles prints NEW over OLD for each path and protocol both have:
// latency added, max rps, CPU and memory (below 1: NEW is lower).
func compareFiles(w io.Writer, oldPath, newPath string) error {
	load := func(p string) (*report, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return &r, nil
	}
	o, err := load(oldPath)
	if err != nil {
		return err
	}
	n, err := load(newPath)
	if err != nil {
		return err
	}
	old := map[string]result{}
	for _, x := range o.Results {
		old[x.Path+" "+x.Protocol] = x
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	fmt.Fprintf(w, "new %s (%s) / old %s (%s)\n\n", newPath, n.Revision, oldPath, o.Revision)
	fmt.Fprintln(w, "| path | proto | added p50 | added p99 | added p99.9 | max rps | rps per proxy core | vCPU per 1k rps | RSS idle | RSS at load | anon idle | anon at load |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range n.Results {
		y, ok := old[x.Path+" "+x.Protocol]
		if !ok {
			continue
		}
		if x.Path == "direct" {
			fmt.Fprintf(w, "| direct | %s | %s (abs) | %s (abs) | %s (abs) | %s | | | | | | |\n", x.Protocol,
				ratio(x.Latency.P50, y.Latency.P50), ratio(x.Latency.P99, y.Latency.P99), ratio(x.Latency.P999, y.Latency.P999), ratio(x.MaxRPS, y.MaxRPS))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Path, x.Protocol, ratio(x.Added.P50, y.Added.P50),
			ratio(x.Added.P99, y.Added.P99), ratio(x.Added.P999, y.Added.P999), ratio(x.MaxRPS, y.MaxRPS), ratio(x.RPSPerCore, y.RPSPerCore), ratio(x.CPUPer1k, y.CPUPer1k),
			ratio(x.RSSIdle, y.RSSIdle), ratio(x.RSSLoad, y.RSSLoad), ratio(x.AnonIdle, y.AnonIdle), ratio(x.AnonLoad, y.AnonLoad))
	}
	return nil
}
