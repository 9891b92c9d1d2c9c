package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mesh/sluice/bench/internal/benchproc"
)

// allPaths are the measured paths besides direct, in order.
var allPaths = []string{"sidecar", "sidecars-mtls", "router", "nginx", "haproxy", "caddy"}

// env is one bench run: its options, its directory (logs, configs,
// fortio's JSON) and the processes it started.
type env struct {
	o                   options
	dir                 string
	backend, backendTCP int
	procs               []*benchproc.Process
}

func (e *env) start(o benchproc.Options) (*benchproc.Process, error) {
	o.LogDir = e.dir
	p, err := benchproc.StartWith(o)
	if err == nil {
		e.procs = append(e.procs, p)
	}
	return p, err
}

func (e *env) stopAll() {
	for _, p := range slices.Backward(e.procs) {
		p.Stop()
	}
}

// target is a path to measure: where fortio sends (by protocol), the
// Host it sends, and the proxy processes whose CPU and memory count.
type target struct {
	name    string
	url     func(protocol string) string
	host    string
	proxies []*benchproc.Process
	// admin are the sluice proxies' admin addresses (nil for the peers).
	admin []string
	// idle is the proxies' memory before any traffic went through them.
	idle benchproc.Memory
}

func run(ctx context.Context, o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(o.out, "run-")
	if err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil { // the peers' configs name it
		return err
	}
	e := &env{o: o, dir: dir, backend: freePort("127.0.0.1"), backendTCP: freePort("127.0.0.1")}
	defer e.stopAll()
	backend, err := e.start(benchproc.Options{Name: "backend", Bin: o.fortio, CPUs: o.loadCPU, Args: []string{"server",
		"-http-port", addr(e.backend), "-tcp-port", addr(e.backendTCP), "-grpc-port", "disabled", "-redirect-port", "disabled", "-udp-port", "disabled"}})
	if err != nil {
		return err
	}
	if err := backend.WaitReady(ctx, "http://"+addr(e.backend)+"/debug", 20*time.Second); err != nil {
		return err
	}
	m, err := e.startMesh(ctx)
	if err != nil {
		return err
	}
	rep := newReport(o)
	fmt.Printf("bench: fortio -qps %d -c %d -t %s, %d B payloads; proxies on CPU %s, load on CPU %s; logs in %s\n",
		o.qps, o.conns, o.duration, o.payload, o.proxyCPU, o.loadCPU, dir)
	paths := strings.Split(o.paths, ",")
	protocols := strings.Split(o.protocols, ",")
	direct := map[string]*result{}
	targets, err := meshTargets(m, paths)
	if err != nil {
		return err
	}
	for _, proto := range protocols {
		r, err := e.measure(ctx, &target{name: "direct", url: func(string) string { return "http://" + addr(e.backend) + "/" }}, proto, nil)
		if err != nil {
			return err
		}
		direct[proto] = r
		rep.Results = append(rep.Results, *r)
	}
	for _, name := range paths {
		t, peer := targets[name], targets[name] == nil
		if peer {
			p, err := e.startPeer(ctx, name)
			if err != nil {
				return err
			}
			t = &target{name: name, proxies: []*benchproc.Process{p.proc}, idle: mem(p.proc),
				url: func(proto string) string {
					if proto == "h2c" {
						return "http://" + p.h2c + "/"
					}
					return "http://" + p.h1 + "/"
				}}
		}
		for _, proto := range protocols {
			r, err := e.measure(ctx, t, proto, direct[proto])
			if err != nil {
				return err
			}
			rep.Results = append(rep.Results, *r)
		}
		if peer { // done with it: the box stays quiet for the next
			t.proxies[0].Stop()
		}
	}
	if rep.TCP, err = e.measureTCP(ctx, m); err != nil {
		return err
	}
	return rep.write(os.Stdout, o.out)
}

// meshTargets are the sluice paths, their idle RSS read before any load.
func meshTargets(m *mesh, paths []string) (map[string]*target, error) {
	ts := map[string]*target{
		"sidecar": {name: "sidecar", host: hostDirect, proxies: []*benchproc.Process{m.client},
			url: func(string) string { return "http://" + m.outbound + "/" }},
		"sidecars-mtls": {name: "sidecars-mtls", host: hostMTLS, proxies: []*benchproc.Process{m.client, m.server},
			url: func(string) string { return "http://" + m.outbound + "/" }},
		"router": {name: "router", proxies: []*benchproc.Process{m.router},
			url: func(string) string { return "http://" + m.gateway + "/" }},
	}
	for _, p := range paths {
		if ts[p] == nil && !slices.Contains(peerNames, p) {
			return nil, fmt.Errorf("-paths: unknown path %q (known: %s)", p, strings.Join(allPaths, ", "))
		}
	}
	for _, t := range ts {
		t.idle = mem(t.proxies...)
		for _, p := range t.proxies {
			t.admin = append(t.admin, m.admin[p])
		}
	}
	return ts, nil
}

// measure runs a warm-up, the fixed-rate run (latency, CPU, memory) and
// the maximum-rate run of one path and protocol.
func (e *env) measure(ctx context.Context, t *target, proto string, direct *result) (*result, error) {
	name := t.name + "-" + proto
	l := load{name: name + "-warmup", url: t.url(proto), host: t.host, protocol: proto, qps: e.o.qps, seconds: min(2, e.o.duration.Seconds())}
	if _, err := e.fortio(ctx, l); err != nil {
		return nil, err
	}
	var profiled func() error
	if e.o.profile {
		profiled = e.profile(ctx, t, name+"-fixed", e.o.duration)
	}
	cpu0 := cpu(t.proxies...)
	peak, stop := sampleMem(t.proxies)
	start := time.Now()
	l.name, l.seconds = name+"-fixed", e.o.duration.Seconds()
	fixed, err := e.fortio(ctx, l)
	elapsed := time.Since(start).Seconds()
	stop()
	if profiled != nil {
		if perr := profiled(); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return nil, err
	}
	r := &result{Path: t.name, Protocol: proto, Proxies: len(t.proxies), QPS: fixed.qps, Latency: fixed.lat, Errors: fixed.errors,
		RSSIdle: t.idle.RSS, RSSLoad: peak.RSS, AnonIdle: t.idle.Anon, AnonLoad: peak.Anon}
	if len(t.proxies) > 0 && fixed.qps > 0 {
		r.CPUPer1k = (cpu(t.proxies...) - cpu0) / elapsed / (fixed.qps / 1000)
	}
	l.name, l.qps = name+"-max", 0
	profiled = nil
	if e.o.profile {
		profiled = e.profile(ctx, t, name, e.o.duration)
	}
	cpu0, start = cpu(t.proxies...), time.Now()
	top, err := e.fortio(ctx, l)
	if profiled != nil {
		if perr := profiled(); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return nil, err
	}
	r.MaxRPS, r.Errors = top.qps, r.Errors+top.errors
	if len(t.proxies) > 0 {
		// The proxies' cores in use at the maximum rate: under 1 (per
		// proxy), the load side, not the proxy, was the limit.
		r.MaxCPU = (cpu(t.proxies...) - cpu0) / time.Since(start).Seconds()
		if r.MaxCPU > 0 {
			r.RPSPerCore = r.MaxRPS / r.MaxCPU
		}
	}
	if direct != nil {
		r.Added = r.Latency.minus(direct.Latency)
		r.MaxRatio = r.MaxRPS / direct.MaxRPS
	}
	fmt.Printf("  %-14s %-5s p50 %7.3f p99 %7.3f p99.9 %7.3f ms, max %8.0f rps (%.2f cores), %.3f vCPU/1k rps, RSS %.1f/%.1f MiB (anon %.1f/%.1f), %d errors\n",
		t.name, proto, r.Latency.P50*1e3, r.Latency.P99*1e3, r.Latency.P999*1e3, r.MaxRPS, r.MaxCPU, r.CPUPer1k, r.RSSIdle, r.RSSLoad, r.AnonIdle, r.AnonLoad, r.Errors)
	return r, nil
}

// measureTCP streams through the client sidecar's TCP passthrough and
// straight to the backend's TCP echo: 64 KiB writes echoed back.
func (e *env) measureTCP(ctx context.Context, m *mesh) ([]tcpResult, error) {
	const payload = 64 << 10
	var out []tcpResult
	for _, t := range []struct {
		name    string
		url     string
		proxies []*benchproc.Process
	}{{"direct", "tcp://" + addr(e.backendTCP), nil}, {"sidecar", "tcp://" + m.tcpAddr, []*benchproc.Process{m.client}}} {
		cpu0 := cpu(t.proxies...)
		start := time.Now()
		r, err := e.fortio(ctx, load{name: "tcp-" + t.name, url: t.url, protocol: "tcp", seconds: e.o.tcpDuration.Seconds(), payload: payload})
		if err != nil {
			return nil, err
		}
		res := tcpResult{Path: t.name, BytesPerSec: r.qps * payload * 2, Errors: r.errors}
		if gb := res.BytesPerSec * time.Since(start).Seconds() / 1e9; len(t.proxies) > 0 && gb > 0 {
			res.CPUPerGB = (cpu(t.proxies...) - cpu0) / gb
		}
		if len(out) == 0 {
			res.Ratio = 1
		} else if out[0].BytesPerSec > 0 {
			res.Ratio = res.BytesPerSec / out[0].BytesPerSec
		}
		fmt.Printf("  tcp %-10s %8.1f MB/s, %.2f CPU s per GB, %d errors\n", t.name, res.BytesPerSec/1e6, res.CPUPerGB, res.Errors)
		out = append(out, res)
	}
	return out, nil
}

func cpu(ps ...*benchproc.Process) float64 {
	var s float64
	for _, p := range ps {
		s += p.CPUSeconds()
	}
	return s
}

// mem sums the processes' memory.
func mem(ps ...*benchproc.Process) benchproc.Memory {
	var s benchproc.Memory
	for _, p := range ps {
		m := p.Mem()
		s.RSS, s.Anon = s.RSS+m.RSS, s.Anon+m.Anon
	}
	return s
}

// sampleMem samples the proxies' summed memory every 250 ms until stop;
// the peaks are read after stop.
func sampleMem(ps []*benchproc.Process) (*benchproc.Memory, func()) {
	peak := new(benchproc.Memory)
	if len(ps) == 0 {
		return peak, func() {}
	}
	done, wg := make(chan struct{}), sync.WaitGroup{}
	wg.Go(func() {
		for {
			m := mem(ps...)
			peak.RSS, peak.Anon = max(peak.RSS, m.RSS), max(peak.Anon, m.Anon)
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	return peak, func() { close(done); wg.Wait() }
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func freePort(ip string) int {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// machine describes where the run happened.
func machine() (host string, cpus int, kernel string) {
	host, _ = os.Hostname()
	b, _ := exec.Command("uname", "-r").Output()
	return host, len(onlineCPUs()), strings.TrimSpace(string(b))
}

func onlineCPUs() []string {
	m, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*")
	return m
}
