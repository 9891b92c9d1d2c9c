package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// resilienceVS exercises route resilience: timeout, retries, per-try
// timeout, fault abort and delay, mirroring.
const resilienceVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /slow}}]
    timeout: 300ms
    retries: {attempts: 0}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /retry}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /pertry}}]
    timeout: 3s
    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: 5xx}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirror}}]
    mirror: {host: shadow}
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
`

// adminStats reads a proxy's /stats into a map.
func adminStats(t *testing.T, admin string) map[string]uint64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		t.Fatalf("stats of %s: %v", admin, err)
	}
	defer resp.Body.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			out[k] = n
		}
	}
	return out
}

// inboundRequests is how many requests a workload's sidecar passed to its
// app: what reached the backend.
func inboundRequests(t *testing.T, w *testenv.Workload) uint64 {
	t.Helper()
	var n uint64
	for k, v := range adminStats(t, w.AdminAddress) {
		if strings.HasPrefix(k, "cluster.inbound|") && strings.HasSuffix(k, ".upstream_rq_total") {
			n += v
		}
	}
	return n
}

// TestRouteResilience runs timeouts, retries, faults and mirroring through
// real sidecars; attempts are counted where they land, at the backend's
// sidecar.
func TestRouteResilience(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-web.yaml", resilienceVS)
	web := service(t, m, "web", map[string]int{"http": 8080}, "v1")[0]
	shadow := service(t, m, "shadow", map[string]int{"http": 8080}, "v1")[0]
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error {
		r, err := c.Get("web:8080", "/delay", nil)
		if err != nil {
			return err
		}
		if r.Header.Get("X-Sluice-Response-Flags") != "DI" {
			return fmt.Errorf("fault routes not in force yet: %s", r)
		}
		return servedBy(r, "web", "v1")
	}, convergeTimeout)
	webCluster := "outbound|8080||web.default.svc.cluster.local"

	t.Run("route timeout is 504 UT", func(t *testing.T) {
		r := get(t, c, "web:8080", "/slow?delay=3s", nil)
		if r.Status != 504 || r.Served() || r.Header.Get("X-Sluice-Response-Flags") != "UT" {
			t.Fatalf("want the proxy's 504 UT, got %s", r)
		}
		if !strings.Contains(string(r.Body), webCluster) {
			t.Errorf("the reason must name the cluster: %q", r.Body)
		}
		if r.Latency < 300*time.Millisecond || r.Latency > 2500*time.Millisecond {
			t.Errorf("504 after %v; the route timeout is 300ms", r.Latency)
		}
	})

	t.Run("retries reach the backend", func(t *testing.T) {
		before := inboundRequests(t, web)
		r := get(t, c, "web:8080", "/retry?status=503", nil)
		if r.Status != 503 || !r.Served() || r.Header.Get("X-Sluice-Response-Flags") != "URX" {
			t.Fatalf("want the backend's 503 with URX once retries ran out, got %s", r)
		}
		if got := inboundRequests(t, web) - before; got != 3 {
			t.Errorf("the backend got %d attempts, want 1 + 2 retries", got)
		}
	})

	t.Run("per-try timeout", func(t *testing.T) {
		before := inboundRequests(t, web)
		r := get(t, c, "web:8080", "/pertry?delay=5s", nil)
		if r.Status != 504 || r.Served() || r.Header.Get("X-Sluice-Response-Flags") != "UT,URX" {
			t.Fatalf("want 504 UT,URX after three timed-out tries, got %s", r)
		}
		if r.Latency < 600*time.Millisecond || r.Latency > 3*time.Second {
			t.Errorf("answered after %v: three tries of 200ms, within the 3s route timeout", r.Latency)
		}
		if got := inboundRequests(t, web) - before; got != 3 {
			t.Errorf("the backend got %d attempts, want 3", got)
		}
	})

	t.Run("fault abort percentage, never retried", func(t *testing.T) {
		before := inboundRequests(t, web)
		const n = 1000
		aborted := 0
		for i := 0; i < n; i++ {
			r := get(t, c, "web:8080", "/abort", nil)
			switch {
			case r.Status == 503 && !r.Served() && r.Header.Get("X-Sluice-Response-Flags") == "FI":
				aborted++
			case r.Status == 200 && r.Served():
			default:
				t.Fatalf("request %d: %s", i, r)
			}
		}
		// Binomial(1000, 0.5): sd 15.8; 5 sd is 79.
		if aborted < 500-79 || aborted > 500+79 {
			t.Errorf("%d of %d aborted at 50%%", aborted, n)
		}
		if got := inboundRequests(t, web) - before; got != uint64(n-aborted) {
			t.Errorf("the backend got %d requests; %d were not aborted (aborts are never sent or retried)", got, n-aborted)
		}
	})

	t.Run("fault delay", func(t *testing.T) {
		r := get(t, c, "web:8080", "/delay", nil)
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Latency < 300*time.Millisecond || r.Latency > 3*time.Second {
			t.Errorf("latency %v with a 300ms delay", r.Latency)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		before := inboundRequests(t, shadow)
		const n = 20
		for i := 0; i < n; i++ {
			r := get(t, c, "web:8080", "/mirror", nil)
			if err := servedBy(r, "web", "v1"); err != nil {
				t.Fatalf("request %d: the client must only see the primary: %v", i, err)
			}
		}
		if err := testenv.Eventually(func() error {
			if got := inboundRequests(t, shadow) - before; got != n {
				return fmt.Errorf("the shadow got %d copies of %d", got, n)
			}
			return nil
		}, 10*time.Second); err != nil {
			t.Error(err)
		}
	})

	t.Run("stats", func(t *testing.T) {
		st := adminStats(t, c.AdminAddress)
		for name, min := range map[string]uint64{
			"http.outbound.response_flags.UT":                             2,
			"http.outbound.response_flags.URX":                            2,
			"http.outbound.response_flags.FI":                             1,
			"http.outbound.response_flags.DI":                             2,
			"http.outbound.fault.aborts_injected":                         1,
			"cluster." + webCluster + ".upstream_rq_retry":                4,
			"cluster." + webCluster + ".upstream_rq_timeout":              1,
			"cluster." + webCluster + ".upstream_rq_per_try_timeout":      3,
			"cluster." + webCluster + ".upstream_rq_retry_limit_exceeded": 2,
			"sluice.mirror.sent":                                          20,
		} {
			if st[name] < min {
				t.Errorf("%s = %d, want at least %d", name, st[name], min)
			}
		}
	})
	requireSyncedNoNACK(t, m)
}

// TestDefaultRetryOnDeadEndpoint: with no retries block, Istio's default
// policy retries a refused connection on another endpoint, so the client
// never sees the dead one.
func TestDefaultRetryOnDeadEndpoint(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	service(t, m, "flaky", map[string]int{"http": 8080})
	// Round robin makes the retry's choice certain: the next host is the
	// live one. (Under Istio's default LEAST_REQUEST the previous_hosts
	// predicate re-picks up to 5 times, so a retry lands on the dead
	// endpoint again with probability 1/32.)
	m.WriteConfig("workloadentry-dead.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: flaky}
spec:
  host: flaky
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: flaky-dead}
spec:
  address: 127.0.0.1
  labels: {app: flaky, version: v1}
  ports: {http: %d}
`, testenv.FreePort()))
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	cluster := "cluster.outbound|8080||flaky.default.svc.cluster.local."
	m.WaitConverged(func() error {
		if st := adminStats(t, c.AdminAddress); st[cluster+"upstream_cx_connect_fail"]+st[cluster+"upstream_rq_retry"] == 0 {
			get(t, c, "flaky:8080", "/", nil)
			get(t, c, "flaky:8080", "/", nil)
			return fmt.Errorf("the dead endpoint is not in the cluster yet")
		}
		return nil
	}, convergeTimeout)
	for i := 0; i < 20; i++ {
		if err := servedBy(get(t, c, "flaky:8080", "/", nil), "flaky", "v1"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if st := adminStats(t, c.AdminAddress); st[cluster+"upstream_rq_retry"] == 0 {
		t.Errorf("no retries counted though one endpoint refuses connections")
	}
	requireSyncedNoNACK(t, m)
}
