// Command xds measures the control plane at scale: for each point
// (services N x endpoints per service M x simulated proxies K, Sidecar
// scoping on or off) it starts a real `sluice control` on a generated
// config folder, connects K simulated proxies (real gRPC ADS streams that
// subscribe and ACK as sluice proxy does), and prints one markdown table
// row: time to ready, propagation of an endpoint change and of a route
// weight change, how many proxies each change touched and the bytes it
// cost, the control plane's CPU and memory, and a real sidecar's RSS.
//
//	go run ./bench/xds -points 100x10x10,1000x10x100 -sidecar-scope
//
// Changes are file writes in the watched folder, so each propagation
// includes the file watch and the control plane's debounce (100 ms quiet,
// 1 s at most) as well as generation and sending.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/xds:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/xds:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	o := options{probeTimeout: defaultProbeTimeout}
	var points string
	fs := flag.NewFlagSet("xds", flag.ContinueOnError)
	fs.StringVar(&points, "points", "100x10x10,1000x10x100", "scale points: services x endpoints per service x proxies, comma-separated")
	fs.BoolVar(&o.sidecarScope, "sidecar-scope", false, "a Sidecar per namespace importing only ./* and istio-system/*")
	fs.StringVar(&o.protocol, "protocol", "auto", "ADS protocol of the simulated proxies: delta, sotw, or auto (delta, SotW when the server does not serve it)")
	fs.StringVar(&o.sluice, "sluice", "", "sluice binary (default: build ./cmd/sluice of this module)")
	fs.IntVar(&o.namespaces, "namespaces", 10, "namespaces the services and proxies are spread over")
	fs.IntVar(&o.vsEvery, "vs-every", 50, "a VirtualService (two weighted subsets) and DestinationRule on every n-th service")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "how long each phase (ready, each change) may take")
	fs.BoolVar(&o.realSidecar, "real-sidecar", true, "measure a real sluice sidecar's RSS at each point and in a 10-service mesh")
	fs.Float64Var(&o.maxRSS, "max-control-rss", defaultMaxRSS(), "MiB of control plane RSS at which a point is stopped and reported as not completed (default: half the memory available)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (configs, logs)")
	fs.StringVar(&o.profileDir, "profile", "", "folder to save the control plane's profiles in: cpu-NxMxK.pb.gz while the proxies connect (-profile-seconds), heap-NxMxK.pb.gz once all are ready")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 10, "how long the -profile CPU profile runs from the moment the proxies start connecting")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.points, err = parsePoints(points); err != nil {
		return o, err
	}
	switch o.protocol {
	case "auto", protoDelta, protoSotW:
	default:
		return o, fmt.Errorf("-protocol %q: want auto, delta or sotw", o.protocol)
	}
	if o.namespaces < 1 || o.vsEvery < 1 {
		return o, errors.New("-namespaces and -vs-every must be at least 1")
	}
	return o, nil
}

func parsePoints(s string) ([]point, error) {
	var out []point
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), "x")
		if len(parts) != 3 {
			return nil, fmt.Errorf("-points: %q is not NxMxK", f)
		}
		var n [3]int
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v < 0 || (i == 0 && v < 1) {
				return nil, fmt.Errorf("-points: %q: %q is not a count", f, p)
			}
			n[i] = v
		}
		out = append(out, point{services: n[0], endpoints: n[1], proxies: n[2]})
	}
	return out, nil
}

// run measures every point and prints the table to out.
func run(ctx context.Context, o options, out io.Writer) error {
	results, baseline, err := measure(ctx, o)
	if err != nil {
		return err
	}
	printTable(out, results, baseline)
	return nil
}

// measure runs every point (and, for the real sidecar's comparison, a
// 10-service mesh per endpoint count); baseline maps endpoints per
// service to the sidecar's RSS there.
func measure(ctx context.Context, o options) ([]*result, map[int]float64, error) {
	raiseFileLimit()
	o.chosen = new(string)
	if o.logf == nil {
		o.logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
		}
	}
	dir, err := os.MkdirTemp("", "sluice-bench-xds-")
	if err != nil {
		return nil, nil, err
	}
	if o.keep {
		o.logf("work folder (kept): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	o.workDir = dir
	if o.sluice == "" {
		root, err := testenv.ModuleRoot()
		if err != nil {
			return nil, nil, err
		}
		o.logf("building sluice")
		if o.sluice, err = buildSluice(ctx, root, dir); err != nil {
			return nil, nil, err
		}
	}
	baseline := map[int]float64{}
	var results []*result
	for _, pt := range o.points {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if _, ok := baseline[pt.endpoints]; !ok && o.realSidecar {
			small := point{services: 10, endpoints: pt.endpoints}
			o.logf("%s: baseline sidecar in a 10-service mesh", small)
			b, err := runPoint(ctx, o, small)
			if err != nil {
				return nil, nil, fmt.Errorf("baseline %s: %w", small, err)
			}
			baseline[pt.endpoints] = b.sidecarRSS
		}
		res, err := runPoint(ctx, o, pt)
		if err != nil {
			return nil, nil, fmt.Errorf("point %s: %w", pt, err)
		}
		results = append(results, res)
		o.logf("%s: done", pt)
	}
	return results, baseline, nil
}
