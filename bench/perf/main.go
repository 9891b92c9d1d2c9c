// Command perf is the data-plane benchmark (make bench): in one run on one
// machine, a fortio load against a fortio echo backend, straight (the
// baseline) and through each proxy: one sluice sidecar, two sluice
// sidecars with auto mTLS, one sluice router (gateway), and nginx,
// HAProxy and Caddy as plain keep-alive reverse proxies with the same
// worker count. For each path and protocol (HTTP/1.1, h2c) it reports
// the latency added at a fixed rate (p50, p90, p99, p99.9, max), the
// maximum rate with every proxy on one core, the proxies' CPU per 1k
// requests/s and their memory idle and under load; and a TCP passthrough
// row (bytes/s, CPU per GB). It prints a markdown table and writes JSON;
// -compare OLD.json NEW.json prints the ratios of two runs.
//
// CPUs: the proxies run on CPU 1 (taskset; sluice with --concurrency 1,
// the peers with one worker), fortio, the backend and the control plane
// on CPU 0, so a proxy's figures are its own core's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
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
	out            string
	paths          string
	protocols      string
	proxyCPU       string
	loadCPU        string
	tcpDuration    time.Duration
	// profile: CPU and allocation profiles of each sluice proxy during
	// its fixed-rate and maximum-rate runs (profile.go).
	profile bool
}

func main() {
	var o options
	var compare bool
	flag.StringVar(&o.sluice, "sluice", "bin/sluice", "sluice binary")
	flag.StringVar(&o.fortio, "fortio", "fortio", "fortio binary (v1.68.2)")
	flag.IntVar(&o.qps, "qps", 1000, "the fixed rate of the latency runs (Istio's method: 1000)")
	flag.IntVar(&o.conns, "c", 16, "connections (Istio's method: 16)")
	flag.DurationVar(&o.duration, "t", 10*time.Second, "duration of each latency run and each maximum-rate run")
	flag.DurationVar(&o.tcpDuration, "tcp-t", 5*time.Second, "duration of each TCP passthrough run")
	flag.IntVar(&o.payload, "payload", 1024, "request and response payload bytes")
	flag.StringVar(&o.out, "out", "bench/out", "directory for the JSON, the markdown table and the logs")
	flag.StringVar(&o.paths, "paths", strings.Join(allPaths, ","), "paths to measure (direct is always measured)")
	flag.StringVar(&o.protocols, "protocols", "http1,h2c", "downstream protocols")
	proxyCPU, loadCPU := defaultCPUs()
	flag.StringVar(&o.proxyCPU, "proxy-cpu", proxyCPU, "CPU list the proxies run on (taskset -c)")
	flag.StringVar(&o.loadCPU, "load-cpu", loadCPU, "CPU list fortio, the backend and the control plane run on")
	flag.BoolVar(&o.profile, "profile", false, "write each sluice proxy's CPU profile of every fixed-rate (NAME-fixed-PROXY) and maximum-rate (NAME-PROXY) run and its allocation profile after it to -out (go tool pprof FILE)")
	flag.BoolVar(&compare, "compare", false, "compare two result files: perf -compare OLD.json NEW.json")
	flag.Parse()
	if compare {
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "usage: perf -compare OLD.json NEW.json")
			os.Exit(2)
		}
		if err := compareFiles(os.Stdout, flag.Arg(0), flag.Arg(1)); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// defaultCPUs puts the proxies on the last CPU the bench may use and the
// load on the others (on one CPU, both share it).
func defaultCPUs() (proxy, load string) {
	n := runtime.NumCPU()
	if n < 2 {
		return "0", "0"
	}
	if n == 2 {
		return "1", "0"
	}
	return strconv.Itoa(n - 1), "0-" + strconv.Itoa(n-2)
}
