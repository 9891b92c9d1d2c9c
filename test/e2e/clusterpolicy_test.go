package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Cluster policy end to end: a real control plane and client sidecar
// (processes), and backends that are HTTP servers in the test, registered
// with WorkloadEntries, so a test can make one of them slow, failing or
// blocked at will.

// podBackend is one backend "pod": it answers 200 with X-Pod: its name,
// or 503 while failing; a request with X-Block waits until Unblock.
type podBackend struct {
	name     string
	port     int
	failing  atomic.Bool
	delay    atomic.Int64 // nanoseconds to wait before answering
	inFlight atomic.Int64
	served   atomic.Int64
	gateMu   sync.Mutex
	gate     chan struct{}
}

func startBackend(t *testing.T, name string) *podBackend {
	t.Helper()
	b := &podBackend{name: name, gate: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = lis.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	t.Cleanup(func() {
		b.Unblock()
		srv.Close()
	})
	return b
}

func (b *podBackend) serve(w http.ResponseWriter, r *http.Request) {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Pod", b.name)
	if b.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, b.name+" failing\n")
		return
	}
	if r.Header.Get("X-Block") != "" {
		b.gateMu.Lock()
		g := b.gate
		b.gateMu.Unlock()
		select {
		case <-g:
		case <-r.Context().Done():
			return
		}
	}
	if d := b.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	b.served.Add(1)
	io.WriteString(w, b.name+"\n")
}

// Unblock lets every blocked request through.
func (b *podBackend) Unblock() {
	b.gateMu.Lock()
	defer b.gateMu.Unlock()
	select {
	case <-b.gate:
	default:
		close(b.gate)
	}
}

func (b *podBackend) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// backendService registers a Kubernetes Service svc (port http 8080)
// whose endpoints are the backends, with their localities (may be empty),
// and writes the DestinationRule YAML given (if any).
func backendService(m *testenv.Mesh, svc, dr string, pods []*podBackend, localities ...string) {
	doc := testenv.ServiceYAML(svc, "default", map[string]string{"app": svc}, map[string]int{"http": 8080})
	for i, p := range pods {
		spec := map[string]any{"address": "127.0.0.1", "labels": map[string]string{"app": svc, "pod": p.name},
			"ports": map[string]int{"http": p.port}}
		if i < len(localities) && localities[i] != "" {
			spec["locality"] = localities[i]
		}
		doc += "---\n" + testenv.MustYAML(map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
			"metadata": map[string]any{"name": p.name, "namespace": "default"}, "spec": spec,
		})
	}
	m.WriteConfig("service-"+svc+".yaml", doc)
	if dr != "" {
		m.WriteConfig("dr-"+svc+".yaml", dr)
	}
}

func clusterOf(svc string) string { return "outbound|8080||" + svc + ".default.svc.cluster.local" }

// adminClusters reads a proxy's /clusters into "cluster::host::stat" ->
// value.
func adminClusters(t *testing.T, admin string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/clusters")
	if err != nil {
		t.Fatalf("clusters of %s: %v", admin, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if i := strings.LastIndex(line, "::"); i > 0 {
			out[line[:i]] = line[i+2:]
		}
	}
	return out
}

// hostStat is one host's value in /clusters.
func hostStat(t *testing.T, admin, cluster string, b *podBackend, stat string) string {
	t.Helper()
	return adminClusters(t, admin)[cluster+"::"+b.addr()+"::"+stat]
}

// servedByAll waits until requests through c reach every backend of svc.
func servedByAll(t *testing.T, m *testenv.Mesh, c *testenv.Client, svc string, pods ...*podBackend) {
	t.Helper()
	m.WaitConverged(func() error {
		seen := map[string]bool{}
		for i := 0; i < 20*len(pods); i++ {
			r, err := c.Get(svc+":8080", "/", nil)
			if err != nil {
				return err
			}
			if r.Status != 200 {
				return fmt.Errorf("request %d: %s", i, r)
			}
			seen[r.Header.Get("X-Pod")] = true
		}
		for _, p := range pods {
			if !seen[p.name] {
				return fmt.Errorf("backend %s not reached yet (saw %v)", p.name, seen)
			}
		}
		return nil
	}, convergeTimeout)
}

// waitLB waits until the client's cluster for svc runs lb policy want.
func waitLB(t *testing.T, m *testenv.Mesh, c *testenv.Client, svc, want string) {
	t.Helper()
	m.WaitConverged(func() error {
		if got := adminClusters(t, c.AdminAddress)[clusterOf(svc)+"::lb_policy"]; got != want {
			return fmt.Errorf("lb_policy %q, want %q", got, want)
		}
		return nil
	}, convergeTimeout)
}

// TestCircuitBreakerOverflow: with maxConnections 1 and
// http1MaxPendingRequests 1, of six concurrent requests one is in flight,
// one waits, and four are refused at once with 503 and
// x-envoy-overloaded: true, counted as upstream_rq_pending_overflow with
// response flag UO.
func TestCircuitBreakerOverflow(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	b := startBackend(t, "cb-0")
	backendService(m, "cb", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb}
spec:
  host: cb
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
`, []*podBackend{b})
	c := m.AddClient(testenv.ClientOptions{Name: "cb-client"})
	m.WaitReady()
	servedByAll(t, m, c, "cb", b)
	m.WaitConverged(func() error {
		if got := adminClusters(t, c.AdminAddress)[clusterOf("cb")+"::default_priority::max_pending_requests"]; got != "1" {
			return fmt.Errorf("max_pending_requests %q, want 1", got)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
	before := adminStats(t, c.AdminAddress)

	const n = 6
	results := make(chan *testenv.Response, n)
	errs := make(chan error, n)
	send := func() {
		r, err := c.Get("cb:8080", "/", map[string]string{"X-Block": "1"})
		if err != nil {
			errs <- err
			return
		}
		results <- r
	}
	// The first request takes the only connection; wait until it is at the
	// backend so the order is known.
	go send()
	testenv.Eventually(func() error {
		if b.inFlight.Load() != 1 {
			return fmt.Errorf("first request not at the backend yet")
		}
		return nil
	}, convergeTimeout)
	for i := 1; i < n; i++ {
		go send()
	}
	// Four overflow at once; the second waits for the connection.
	var overflowed []*testenv.Response
	deadline := time.After(convergeTimeout)
	for len(overflowed) < n-2 {
		select {
		case r := <-results:
			if r.Status != http.StatusServiceUnavailable {
				t.Fatalf("while the connection is busy and one request waits: %s", r)
			}
			overflowed = append(overflowed, r)
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("only %d of %d requests were refused", len(overflowed), n-2)
		}
	}
	for _, r := range overflowed {
		if r.Header.Get("X-Envoy-Overloaded") != "true" {
			t.Errorf("overflow answer without x-envoy-overloaded: true: %s", r)
		}
		if f := r.Header.Get("X-Sluice-Response-Flags"); !strings.Contains(f, "UO") {
			t.Errorf("overflow answer's response flags %q, want UO", f)
		}
	}
	st := adminStats(t, c.AdminAddress)
	cl := "cluster." + clusterOf("cb") + "."
	if got := st[cl+"upstream_rq_pending_active"]; got != 1 {
		t.Errorf("upstream_rq_pending_active = %d while one request waits, want 1", got)
	}
	b.Unblock()
	for i := 0; i < 2; i++ {
		select {
		case r := <-results:
			if r.Status != 200 {
				t.Errorf("admitted request: %s", r)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(convergeTimeout):
			t.Fatal("admitted requests did not complete")
		}
	}
	st = adminStats(t, c.AdminAddress)
	if got := st[cl+"upstream_rq_pending_overflow"] - before[cl+"upstream_rq_pending_overflow"]; got != n-2 {
		t.Errorf("upstream_rq_pending_overflow grew by %d, want %d", got, n-2)
	}
	// As Envoy counts it (conn_pool_base.cc): only the request that went
	// pending wanted a new connection over max_connections; the refused
	// ones never asked for one.
	if got := st[cl+"upstream_cx_overflow"] - before[cl+"upstream_cx_overflow"]; got != 1 {
		t.Errorf("upstream_cx_overflow grew by %d, want 1 (the pending request found max_connections reached)", got)
	}
	if got := st[cl+"upstream_rq_pending_total"] - before[cl+"upstream_rq_pending_total"]; got != 1 {
		t.Errorf("upstream_rq_pending_total grew by %d, want 1", got)
	}
	if st[cl+"upstream_cx_active"] < 1 || st[cl+"upstream_cx_total"] < 1 {
		t.Errorf("connection stats: cx_active %d cx_total %d", st[cl+"upstream_cx_active"], st[cl+"upstream_cx_total"])
	}
}

// TestOutlierEjectionAndReturn: a backend answering 503 is ejected after
// consecutive5xxErrors, gets no traffic while ejected, and returns after
// baseEjectionTime.
func TestOutlierEjectionAndReturn(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	good, bad := startBackend(t, "od-good"), startBackend(t, "od-bad")
	backendService(m, "od", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 3s
      maxEjectionPercent: 50
`, []*podBackend{good, bad})
	c := m.AddClient(testenv.ClientOptions{Name: "od-client"})
	m.WaitReady()
	servedByAll(t, m, c, "od", good, bad)
	waitLB(t, m, c, "od", "ROUND_ROBIN")
	requireSyncedNoNACK(t, m)
	cl := clusterOf("od")

	bad.failing.Store(true)
	failures := 0
	for i := 0; i < 20 && hostStat(t, c.AdminAddress, cl, bad, "health_flags") == "healthy"; i++ {
		r := get(t, c, "od:8080", "/", nil)
		if r.Status == 503 {
			failures++
		}
	}
	if got := hostStat(t, c.AdminAddress, cl, bad, "health_flags"); got != "/failed_outlier_check" {
		t.Fatalf("failing backend not ejected after %d 503s: health_flags %q", failures, got)
	}
	ejectedAt := time.Now()
	if failures != 2 {
		t.Errorf("the client saw %d 503s before the ejection, want 2 (consecutive5xxErrors)", failures)
	}
	st := adminStats(t, c.AdminAddress)
	if st["cluster."+cl+".outlier_detection.ejections_active"] != 1 || st["cluster."+cl+".outlier_detection.ejections_enforced_total"] != 1 {
		t.Errorf("ejections_active %d, ejections_enforced_total %d, want 1 and 1",
			st["cluster."+cl+".outlier_detection.ejections_active"], st["cluster."+cl+".outlier_detection.ejections_enforced_total"])
	}
	// While ejected, everything goes to the good backend. 1s of requests
	// is well inside the 3s ejection.
	for i := 0; i < 10 && time.Since(ejectedAt) < time.Second; i++ {
		if r := get(t, c, "od:8080", "/", nil); r.Status != 200 || r.Header.Get("X-Pod") != "od-good" {
			t.Fatalf("request while %s is ejected: %s", bad.name, r)
		}
	}

	// The backend recovers; after its ejection time (3s × 1, checked every
	// 1s interval) it is back and gets traffic again.
	bad.failing.Store(false)
	m.WaitConverged(func() error {
		if got := hostStat(t, c.AdminAddress, cl, bad, "health_flags"); got != "healthy" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	}, convergeTimeout)
	back := time.Since(ejectedAt)
	// ejectedAt is when the test saw the ejection, a little after it
	// happened; 0.5s covers that, far less than the 3s asserted.
	if back < 2500*time.Millisecond {
		t.Errorf("back after %v, before its 3s base ejection time", back)
	}
	t.Logf("ejected host back after %v (base ejection time 3s, interval 1s)", back.Round(10*time.Millisecond))
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		r := get(t, c, "od:8080", "/", nil)
		if r.Status != 200 {
			t.Fatalf("after the return: %s", r)
		}
		seen[r.Header.Get("X-Pod")]++
	}
	if seen["od-bad"] == 0 {
		t.Errorf("returned backend got none of 10 round-robin requests: %v", seen)
	}
	if got := hostStat(t, c.AdminAddress, cl, bad, "num_ejections"); got != "1" {
		t.Errorf("num_ejections %q, want 1", got)
	}
}

// TestConsistentHashHeader: with consistentHash on a header, every request
// of a user goes to one backend, and users spread over the backends.
func TestConsistentHashHeader(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	pods := []*podBackend{startBackend(t, "ch-0"), startBackend(t, "ch-1"), startBackend(t, "ch-2")}
	backendService(m, "ch", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ch}
spec:
  host: ch
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`, pods)
	c := m.AddClient(testenv.ClientOptions{Name: "ch-client"})
	m.WaitReady()
	waitLB(t, m, c, "ch", "RING_HASH")
	servedByAll(t, m, c, "ch", pods...) // requests without x-user hash at random
	requireSyncedNoNACK(t, m)

	// 12 users: the chance they all land on one of 3 backends is 3^-11.
	used := map[string]bool{}
	for u := 0; u < 12; u++ {
		user := "user-" + strconv.Itoa(u)
		first := ""
		for i := 0; i < 8; i++ {
			r := get(t, c, "ch:8080", "/", map[string]string{"x-user": user})
			if r.Status != 200 {
				t.Fatalf("%s: %s", user, r)
			}
			pod := r.Header.Get("X-Pod")
			if first == "" {
				first = pod
			} else if pod != first {
				t.Fatalf("%s went to %s, then %s", user, first, pod)
			}
		}
		used[first] = true
	}
	if len(used) < 2 {
		t.Errorf("12 users all hashed to %v", used)
	}
}

// TestConsistentHashCookie: with a cookie hash and a TTL, the proxy sets
// the cookie on a request that has none, and the requests that send it
// back stay on the backend that answered the first.
func TestConsistentHashCookie(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	pods := []*podBackend{startBackend(t, "ck-0"), startBackend(t, "ck-1"), startBackend(t, "ck-2")}
	backendService(m, "ck", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ck}
spec:
  host: ck
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, path: /, ttl: 60s}
`, pods)
	c := m.AddClient(testenv.ClientOptions{Name: "ck-client"})
	m.WaitReady()
	waitLB(t, m, c, "ck", "RING_HASH")
	// Requests without the cookie on one connection all get the same
	// generated cookie (Envoy hashes the connection's addresses), so they
	// all go to one backend: converged once that answers.
	m.WaitConverged(func() error {
		if r, err := c.Get("ck:8080", "/", nil); err != nil || r.Status != 200 {
			return fmt.Errorf("%v %s", err, r)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)

	for s := 0; s < 3; s++ {
		first := get(t, c, "ck:8080", "/", nil)
		sc := first.Header.Get("Set-Cookie")
		if first.Status != 200 || !strings.HasPrefix(sc, `session="`) || !strings.Contains(sc, "Max-Age=60") ||
			!strings.Contains(sc, "Path=/") || !strings.Contains(sc, "HttpOnly") {
			t.Fatalf("request without the cookie: want Set-Cookie session=\"...\"; Max-Age=60; Path=/; HttpOnly, got %s", first)
		}
		value := strings.Trim(strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], "session="), `"`)
		pod := first.Header.Get("X-Pod")
		for i := 0; i < 8; i++ {
			r := get(t, c, "ck:8080", "/", map[string]string{"Cookie": "session=" + value})
			if r.Status != 200 || r.Header.Get("X-Pod") != pod {
				t.Fatalf("session %s: first answered by %s, now %s", value, pod, r)
			}
			if r.Header.Get("Set-Cookie") != "" {
				t.Fatalf("cookie set again on a request that sent it: %s", r.Header.Get("Set-Cookie"))
			}
		}
		c.HTTP.CloseIdleConnections() // a new connection gets a new cookie
	}
}

// TestLeastRequestVersusRoundRobin: with one slow and one fast backend
// under concurrent load, round robin splits requests evenly while least
// request (power of two choices over active requests) sends most to the
// fast one.
func TestLeastRequestVersusRoundRobin(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	slow, fast := startBackend(t, "lb-slow"), startBackend(t, "lb-fast")
	dr := func(policy string) string {
		return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy:
    loadBalancer: {simple: ` + policy + `}
`
	}
	backendService(m, "lb", dr("ROUND_ROBIN"), []*podBackend{slow, fast})
	c := m.AddClient(testenv.ClientOptions{Name: "lb-client"})
	m.WaitReady()
	servedByAll(t, m, c, "lb", slow, fast)
	waitLB(t, m, c, "lb", "ROUND_ROBIN")
	requireSyncedNoNACK(t, m)
	slow.delay.Store(int64(80 * time.Millisecond))

	// 8 workers × 25 requests each.
	slowShare := func() float64 {
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					r, err := c.Get("lb:8080", "/", nil)
					if err != nil || r.Status != 200 {
						t.Errorf("request: %v %s", err, r)
						return
					}
					mu.Lock()
					counts[r.Header.Get("X-Pod")]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return float64(counts["lb-slow"]) / float64(counts["lb-slow"]+counts["lb-fast"])
	}
	rr := slowShare()
	// Round robin alternates whatever the latency: exactly half, give or
	// take the convergence requests interleaving (±0.05).
	if rr < 0.45 || rr > 0.55 {
		t.Errorf("ROUND_ROBIN: slow backend got %.2f of requests, want 0.50 ±0.05", rr)
	}
	m.WriteConfig("dr-lb.yaml", dr("LEAST_REQUEST"))
	waitLB(t, m, c, "lb", "LEAST_REQUEST")
	lr := slowShare()
	// The slow backend nearly always has requests in flight and the fast
	// one rarely does, so P2C picks the slow one about when both samples
	// are it: 1/4. 0.38 leaves room for the moments both are idle.
	if lr > 0.38 {
		t.Errorf("LEAST_REQUEST: slow backend got %.2f of requests, want under 0.38 (about 0.25)", lr)
	}
	t.Logf("slow backend's share: round robin %.2f, least request %.2f", rr, lr)
}

// TestLocalityFailover: a client in us-east/zone-a prefers the backends in
// its zone; when half of them are ejected the zone keeps 70% (health
// 1.4 × 1/2) and 30% spills to the next priority; when all are, the
// traffic fails over to the other region. Istio turns locality failover
// on by default but only with outlier detection.
func TestLocalityFailover(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	l1, l2, remote := startBackend(t, "loc-east-1"), startBackend(t, "loc-east-2"), startBackend(t, "loc-west")
	backendService(m, "loc", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: loc}
spec:
  host: loc
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 5m
      maxEjectionPercent: 100
`, []*podBackend{l1, l2, remote}, "us-east/zone-a", "us-east/zone-a", "us-west/zone-b")
	c := m.AddClient(testenv.ClientOptions{Name: "loc-client", Locality: "us-east/zone-a"})
	m.WaitReady()
	cl := clusterOf("loc")
	m.WaitConverged(func() error {
		if p := hostStat(t, c.AdminAddress, cl, remote, "priority"); p != "1" {
			return fmt.Errorf("remote backend priority %q, want 1", p)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
	if p := hostStat(t, c.AdminAddress, cl, l1, "priority"); p != "0" {
		t.Errorf("local backend priority %q, want 0", p)
	}
	for i := 0; i < 20; i++ {
		if r := get(t, c, "loc:8080", "/", nil); r.Status != 200 || r.Header.Get("X-Pod") == "loc-west" {
			t.Fatalf("with its zone healthy, request %d left it: %s", i, r)
		}
	}

	// One of two local backends fails: ejected at its first 503.
	l1.failing.Store(true)
	for i := 0; i < 10 && hostStat(t, c.AdminAddress, cl, l1, "health_flags") == "healthy"; i++ {
		get(t, c, "loc:8080", "/", nil)
	}
	if got := hostStat(t, c.AdminAddress, cl, l1, "health_flags"); got != "/failed_outlier_check" {
		t.Fatalf("failing local backend not ejected: %q", got)
	}
	const n = 300
	remoteHits := 0
	for i := 0; i < n; i++ {
		r := get(t, c, "loc:8080", "/", nil)
		if r.Status != 200 {
			t.Fatalf("with one local backend ejected: %s", r)
		}
		if r.Header.Get("X-Pod") == "loc-west" {
			remoteHits++
		}
	}
	// Expected 0.30; the binomial sd at n=300 is 0.026, so ±0.1 is ~4 sd.
	if f := float64(remoteHits) / n; f < 0.2 || f > 0.4 {
		t.Errorf("half the local zone ejected: remote got %.2f of requests, want 0.30 ±0.10 (spill over 1.4 × 1/2)", f)
	}

	// The other local backend fails too: everything fails over.
	l2.failing.Store(true)
	for i := 0; i < 20 && hostStat(t, c.AdminAddress, cl, l2, "health_flags") == "healthy"; i++ {
		get(t, c, "loc:8080", "/", nil)
	}
	for i := 0; i < 20; i++ {
		if r := get(t, c, "loc:8080", "/", nil); r.Status != 200 || r.Header.Get("X-Pod") != "loc-west" {
			t.Fatalf("with the local zone ejected, request %d: %s", i, r)
		}
	}
}
