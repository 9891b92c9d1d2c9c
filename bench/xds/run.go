package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/bench/internal/benchproc"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// point is one scale point: services x endpoints per service x proxies.
type point struct{ services, endpoints, proxies int }

func (p point) String() string { return fmt.Sprintf("%dx%dx%d", p.services, p.endpoints, p.proxies) }

// options configure a bench run.
type options struct {
	sluice       string
	points       []point
	sidecarScope bool
	protocol     string // auto, delta or sotw
	// chosen is what auto resolved to at the first point, for the rest.
	chosen     *string
	namespaces int
	vsEvery    int
	timeout    time.Duration // per phase
	maxRSS     float64       // MiB of control plane RSS that stops a point
	// probeTimeout bounds the Delta probe of -protocol auto.
	probeTimeout   time.Duration
	realSidecar    bool
	workDir        string // where run puts each point's folder
	keep           bool   // keep the work folder
	profileDir     string // folder to save the control plane's CPU profile (connecting) and heap profile (all ready) in
	profileSeconds int    // how long the CPU profile runs
	logf           func(format string, args ...any)
}

// changeResult is one change's propagation.
type changeResult struct {
	measured  bool
	latencies []time.Duration // per holding proxy that got it
	holders   int             // proxies holding the changed service's cluster
	missing   int             // holders that did not get it in time
	touched   int             // proxies that received any response
	bytes     int64           // response bytes all proxies received
	cpu       float64         // control plane CPU seconds
}

// result is one point's row.
type result struct {
	point
	scope      bool
	protocol   string
	ready      []time.Duration
	notReady   int
	ep, cfg    changeResult
	cpuStart   float64 // CPU to load the config and idle (0 proxies)
	cpuConnect float64 // CPU to serve K proxies to readiness
	rssIdle    float64
	rssK       float64
	// heapIdle and heapK are the control plane's live heap (MiB, after a
	// forced GC) with no proxies and with K: what the proxies cost beyond
	// garbage the collector has not returned yet.
	heapIdle, heapK float64
	hwm             float64
	aborted         string
	benchCPU        float64 // the bench process's own CPU seconds for the point
	sidecarRSS      float64
	proxyFailure    []string
}

// runner is one running control plane with its simulated proxies.
type runner struct {
	o       options
	pt      point
	mesh    meshSpec
	dir     string
	config  string
	state   string
	xds     string
	http    string
	control *benchproc.Process
	watch   atomic.Pointer[watch]
	active  atomic.Int64
	simsMu  sync.Mutex
	sims    []*simProxy
	aborted atomic.Value  // string: why the point was stopped
	peak    atomic.Uint64 // control plane VmHWM in KiB, as the guard last read it
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// runPoint measures one scale point from a fresh control plane.
func runPoint(ctx context.Context, o options, pt point) (*result, error) {
	r := &runner{o: o, pt: pt, mesh: meshSpec{services: pt.services, endpoints: pt.endpoints,
		namespaces: o.namespaces, vsEvery: o.vsEvery, sidecarScope: o.sidecarScope}}
	defer r.close()
	res := &result{point: pt, scope: o.sidecarScope}
	cpu0 := selfCPU()
	defer func() { res.benchCPU = selfCPU() - cpu0 }()
	if err := r.startControl(ctx); err != nil {
		return nil, err
	}
	stopGuard := make(chan struct{})
	defer close(stopGuard)
	go r.guard(stopGuard)
	time.Sleep(time.Second)
	res.cpuStart = r.control.CPUSeconds()
	res.rssIdle, _ = r.control.MemMiB()
	res.heapIdle = r.liveHeapMiB(ctx)
	if pt.proxies > 0 {
		if err := r.measureProxies(ctx, res); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if o.realSidecar && r.abortReason() == "" {
		o.logf("%s: starting a real sidecar", pt)
		var err error
		if res.sidecarRSS, err = r.realSidecarRSS(ctx); err != nil {
			return nil, err
		}
	}
	if _, res.hwm = r.control.MemMiB(); res.hwm == 0 {
		res.hwm = r.peakMiB()
	}
	res.aborted = r.abortReason()
	for _, s := range r.sims {
		if err := s.failure(); err != nil && len(res.proxyFailure) < 3 {
			res.proxyFailure = append(res.proxyFailure, err.Error())
		}
	}
	return res, nil
}

// measureProxies connects the simulated proxies, waits until they are
// ready, and measures both changes; an abort (see guard) ends it early.
func (r *runner) measureProxies(ctx context.Context, res *result) error {
	proto, err := r.chooseProtocol(ctx)
	if err != nil {
		return err
	}
	res.protocol = proto
	r.o.logf("%s: connecting %d proxies (%s)", r.pt, r.pt.proxies, proto)
	stopCPU := r.startCPUProfile(ctx)
	r.connect(ctx, proto)
	res.ready, res.notReady = r.waitReady(ctx, r.o.timeout)
	stopCPU()
	res.cpuConnect = r.control.CPUSeconds() - res.cpuStart
	time.Sleep(time.Second)
	res.rssK, _ = r.control.MemMiB()
	res.heapK = r.liveHeapMiB(ctx)
	if r.o.profileDir != "" {
		if err := r.saveProfile(ctx, "heap", "/debug/pprof/heap?gc=1"); err != nil {
			r.o.logf("%s: heap profile: %v", r.pt, err)
		}
	}
	if r.abortReason() != "" || ctx.Err() != nil {
		return nil
	}
	r.o.logf("%s: %d ready, %d not; measuring an endpoint change", r.pt, len(res.ready), res.notReady)
	res.ep = r.endpointChange(ctx)
	if r.abortReason() != "" || ctx.Err() != nil {
		return nil
	}
	r.o.logf("%s: measuring a route weight change", r.pt)
	res.cfg = r.configChange(ctx)
	return nil
}

func (r *runner) abortReason() string {
	s, _ := r.aborted.Load().(string)
	return s
}

func (r *runner) simList() []*simProxy {
	r.simsMu.Lock()
	defer r.simsMu.Unlock()
	return r.sims
}

func (r *runner) startControl(ctx context.Context) error {
	var err error
	if r.dir, err = os.MkdirTemp(r.o.workDir, "point-"+r.pt.String()+"-"); err != nil {
		return err
	}
	r.config, r.state = filepath.Join(r.dir, "config"), filepath.Join(r.dir, "state")
	if err := os.MkdirAll(r.config, 0o755); err != nil {
		return err
	}
	if err := r.mesh.write(r.config); err != nil {
		return err
	}
	r.xds, r.http = testenv.FreeAddr(), testenv.FreeAddr()
	r.control, err = benchproc.Start(r.o.sluice, r.dir, "control", "control", "--config-dir", r.config,
		"--xds-address", r.xds, "--http-address", r.http, "--state-dir", r.state, "--xds-tls=false")
	if err != nil {
		return err
	}
	r.o.logf("%s: control plane starting (logs: %s)", r.pt, r.control.Log())
	return r.control.WaitReady(ctx, "http://"+r.http+"/ready", 5*time.Minute)
}

// close stops the proxies and the control plane.
func (r *runner) close() {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
	if r.control != nil {
		r.control.Stop()
	}
}

// node is what simulated proxy i announces, as sluice proxy does
// (model.Proxy.Node): a sidecar in namespace i mod namespaces with an IP
// of its own.
func (r *runner) node(name string, i int) *model.Proxy {
	return &model.Proxy{Type: model.Sidecar, Name: name, Namespace: r.mesh.namespace(i),
		Labels: map[string]string{"app": "bench-client"}, IPs: []string{fmt.Sprintf("127.1.%d.%d", (i>>8)&0xff, i&0xff+1)},
		OutboundAddress: "127.0.0.1:15001", ServiceAccount: "default"}
}

func (r *runner) simOptions(name string, i int, proto string) (simOptions, error) {
	dial, err := identity.ControlPlane{Address: r.xds, TokenFile: filepath.Join(r.state, "bootstrap-token")}.DialOptions()
	if err != nil {
		return simOptions{}, err
	}
	return simOptions{Address: r.xds, Dial: dial, Node: r.node(name, i).Node(), Protocol: proto,
		Watch: &r.watch, Activity: &r.active}, nil
}

// chooseProtocol resolves -protocol auto, once per run: one probe proxy
// tries Delta; Unimplemented, or no config within probeTimeout, means
// SotW (the go-control-plane based server before issue 10 serves Delta
// but never answers a proxy it only met on a Delta stream).
func (r *runner) chooseProtocol(ctx context.Context) (string, error) {
	if r.o.protocol != "auto" {
		return r.o.protocol, nil
	}
	if r.o.chosen != nil && *r.o.chosen != "" {
		return *r.o.chosen, nil
	}
	proto, err := r.probe(ctx)
	if err == nil && r.o.chosen != nil {
		*r.o.chosen = proto
	}
	return proto, err
}

// defaultProbeTimeout is how long a Delta probe may wait for config.
const defaultProbeTimeout = 5 * time.Second

func (r *runner) probe(ctx context.Context) (string, error) {
	so, err := r.simOptions("probe", 0, protoDelta)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.probeTimeout)
	defer cancel()
	p := newSim(so)
	errc := make(chan error, 1)
	go func() { errc <- p.run(ctx) }()
	for {
		if _, ok := p.readiness(); ok {
			cancel()
			<-errc
			return protoDelta, nil
		}
		select {
		case err := <-errc:
			if isUnimplemented(err) {
				r.o.logf("%s: delta ADS unimplemented; using SotW", r.pt)
				return protoSotW, nil
			}
			if err == nil {
				r.o.logf("%s: delta ADS gave no config in %v; using SotW", r.pt, r.o.probeTimeout)
				return protoSotW, nil
			}
			return "", fmt.Errorf("delta probe: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// connect starts every simulated proxy at once, as after a control plane
// restart.
func (r *runner) connect(ctx context.Context, proto string) {
	ctx, r.cancel = context.WithCancel(ctx)
	for i := range r.pt.proxies {
		so, err := r.simOptions(fmt.Sprintf("client-%d", i), i, proto)
		if err != nil {
			panic(err) // only a missing TLS root file fails, and TLS is off
		}
		s := newSim(so)
		r.simsMu.Lock()
		r.sims = append(r.sims, s)
		r.simsMu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.run(ctx)
		}()
	}
}

// waitReady waits until every proxy is ready or failed, or timeout.
func (r *runner) waitReady(ctx context.Context, timeout time.Duration) (ready []time.Duration, notReady int) {
	deadline := time.Now().Add(timeout)
	for {
		ready, notReady = ready[:0], 0
		failed := 0
		for _, s := range r.sims {
			if d, ok := s.readiness(); ok {
				ready = append(ready, d)
			} else {
				notReady++
				if s.failure() != nil {
					failed++
				}
			}
		}
		if notReady == failed || time.Now().After(deadline) || r.abortReason() != "" || ctx.Err() != nil {
			return ready, notReady
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measureChange arms w, makes the change, waits until every proxy holding
// cluster got what w matches (or the timeout), then until responses stop
// for a second, and collects what the proxies saw.
func (r *runner) measureChange(ctx context.Context, cluster string, w *watch, change func() error) changeResult {
	var res changeResult
	var holders []*simProxy
	for _, s := range r.sims {
		if s.holdsCluster(cluster) {
			holders = append(holders, s)
		}
	}
	res.holders, res.measured = len(holders), true
	cpu0 := r.control.CPUSeconds()
	w.start = time.Now()
	r.watch.Store(w)
	defer r.watch.Store(nil)
	if err := change(); err != nil {
		r.o.logf("%s: change failed: %v", r.pt, err)
		res.missing = len(holders)
		return res
	}
	deadline := w.start.Add(r.o.timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		got := 0
		for _, s := range holders {
			if !s.stats(w).got.IsZero() {
				got++
			}
		}
		if got == len(holders) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Settle: pushes to proxies that do not hold the cluster may still be
	// under way; wait until no proxy received anything for a second.
	for settle := time.Now().Add(30 * time.Second); time.Now().Before(settle) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(time.Unix(0, r.active.Load())) > time.Second {
			break
		}
	}
	res.cpu = r.control.CPUSeconds() - cpu0
	for _, s := range r.sims {
		st := s.stats(w)
		if !st.first.IsZero() {
			res.touched++
		}
		res.bytes += st.bytes
	}
	for _, s := range holders {
		if st := s.stats(w); !st.got.IsZero() {
			res.latencies = append(res.latencies, st.got.Sub(w.start))
		} else {
			res.missing++
		}
	}
	return res
}

// changedService is the service both changes act on: the first, which has
// a VirtualService.
const changedService = 0

// endpointChange adds one WorkloadEntry to the changed service and waits
// for EDS updates of its cluster that list the new address.
func (r *runner) endpointChange(ctx context.Context) changeResult {
	const ip = "10.200.0.1"
	cluster := r.mesh.cluster(changedService, "")
	// The EDS resource is named by the cluster's eds_cluster_config
	// service_name, as the proxies' CDS view says (sluice: the cluster name).
	eds := cluster
	for _, s := range r.simList() {
		if n, ok := s.edsName(cluster); ok && n != "" {
			eds = n
			break
		}
	}
	w := &watch{typeURL: endpointType, match: func(_, name string, b []byte) (bool, error) {
		if name != eds {
			return false, nil
		}
		return hasEndpoint(b, ip)
	}}
	return r.measureChange(ctx, cluster, w, func() error {
		return writeAtomic(r.config, "added-endpoint.yaml",
			workloadEntryYAML(r.mesh, changedService, r.mesh.service(changedService)+"-added", ip, "v1"))
	})
}

// configChange moves the changed service's VirtualService from 90/10 to
// 63/37 and waits for RDS (or, with VHDS, virtual host) updates carrying
// the new weight.
func (r *runner) configChange(ctx context.Context) changeResult {
	const weight = 63
	host := r.mesh.host(changedService)
	subset := r.mesh.cluster(changedService, "v1")
	w := &watch{typeURL: routeType, alsoVHDS: true, match: func(typeURL, _ string, b []byte) (bool, error) {
		if typeURL == vhostType {
			return vhostHasWeight(b, host, subset, weight)
		}
		return hasWeight(b, host, subset, weight)
	}}
	return r.measureChange(ctx, r.mesh.cluster(changedService, ""), w, func() error {
		return writeAtomic(r.config, r.mesh.routeFile(changedService), r.mesh.routeYAML(changedService, weight))
	})
}

// realSidecarRSS starts one real sluice sidecar in namespace ns-0 (under
// its Sidecar scope when scoping is on), waits until it is ready and
// returns its RSS.
func (r *runner) realSidecarRSS(ctx context.Context) (float64, error) {
	admin := testenv.FreeAddr()
	p, err := benchproc.Start(r.o.sluice, r.dir, "sidecar", "proxy", "--type", "sidecar", "--name", "bench-sidecar",
		"--namespace", r.mesh.namespace(0), "--labels", "app=bench-sidecar",
		"--outbound-address", testenv.FreeAddr(), "--admin-address", admin,
		"--xds-address", r.xds, "--token-file", filepath.Join(r.state, "bootstrap-token"),
		"--ca-root-file", filepath.Join(r.state, "root-cert.pem"), "--xds-tls=false", "--log-level", "warn")
	if err != nil {
		return 0, err
	}
	defer p.Stop()
	if err := p.WaitReady(ctx, "http://"+admin+"/ready", r.o.timeout); err != nil {
		return 0, err
	}
	time.Sleep(2 * time.Second)
	rss, _ := p.MemMiB()
	return rss, nil
}

// startCPUProfile profiles the control plane's CPU for -profile-seconds
// from now (the proxies connecting), into cpu-<point>.pb.gz in the
// -profile folder; the returned wait waits for it to be saved.
func (r *runner) startCPUProfile(ctx context.Context) (wait func()) {
	if r.o.profileDir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// net/http/pprof writes the profile only once its time is up.
		path := fmt.Sprintf("/debug/pprof/profile?seconds=%d", r.o.profileSeconds)
		if err := r.saveProfile(ctx, "cpu", path); err != nil {
			r.o.logf("%s: cpu profile: %v", r.pt, err)
		}
	}()
	return func() { <-done }
}

// saveProfile saves the control plane's profile at path (/debug/pprof/...)
// as <kind>-<point>.pb.gz in the -profile folder.
func (r *runner) saveProfile(ctx context.Context, kind, path string) error {
	body, err := r.controlGet(ctx, path)
	if err != nil {
		return err
	}
	file := filepath.Join(r.o.profileDir, kind+"-"+r.pt.String()+".pb.gz")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return err
	}
	r.o.logf("%s: %s profile saved: %s", r.pt, kind, file)
	return nil
}

// controlGet reads one of the control plane's HTTP endpoints (at most 64 MiB).
func (r *runner) controlGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.http+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// liveHeapMiB forces a GC in the control plane (/debug/pprof/heap?gc=1)
// and reads its heap in use (go_memstats_heap_alloc_bytes of /metrics);
// 0 when either fails.
func (r *runner) liveHeapMiB(ctx context.Context) float64 {
	if _, err := r.controlGet(ctx, "/debug/pprof/heap?gc=1"); err != nil {
		r.o.logf("%s: live heap: %v", r.pt, err)
		return 0
	}
	body, err := r.controlGet(ctx, "/metrics")
	if err != nil {
		r.o.logf("%s: live heap: %v", r.pt, err)
		return 0
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_alloc_bytes "); ok {
			b, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return b / (1 << 20)
			}
		}
	}
	r.o.logf("%s: live heap: no go_memstats_heap_alloc_bytes in /metrics", r.pt)
	return 0
}
