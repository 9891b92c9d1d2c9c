package httpproxy_test

// In-process end-to-end tests of route resilience: real config (Istio
// YAML) generated into xDS, compiled into a runtime, served by the
// request path on loopback, in front of real backends that count and
// record what reaches them. Timing assertions are lower bounds plus
// generous upper bounds (2 cores, -race).

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// backend is an upstream that records every request it gets and answers
// with its handler.
type backend struct {
	name string
	srv  *httptest.Server
	port int

	mu    sync.Mutex
	reqs  []seen
	count atomic.Int64
	serve func(n int64, w http.ResponseWriter, r *http.Request)
}

type seen struct {
	host, path, attempt string
	body                []byte
}

func newBackend(t testing.TB, name string, serve func(n int64, w http.ResponseWriter, r *http.Request)) *backend {
	b := &backend{name: name, serve: serve}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := b.count.Add(1)
		b.mu.Lock()
		b.reqs = append(b.reqs, seen{host: r.Host, path: r.URL.Path, attempt: r.Header.Get("X-Envoy-Attempt-Count"), body: body})
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		if b.serve != nil {
			b.serve(n, w, r)
			return
		}
		fmt.Fprintf(w, "%s got %d bytes\n", name, len(body))
	}))
	t.Cleanup(b.srv.Close)
	_, p, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	fmt.Sscan(p, &b.port)
	return b
}

func (b *backend) seen() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

// ok answers 200; fail answers status.
func ok(_ int64, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }

// failFirst answers status to the first k requests, then 200.
func failFirst(k int64, status int) func(int64, http.ResponseWriter, *http.Request) {
	return func(n int64, w http.ResponseWriter, r *http.Request) {
		if n <= k {
			w.WriteHeader(status)
			io.WriteString(w, "failing on purpose\n")
			return
		}
		io.WriteString(w, "ok\n")
	}
}

// hangFirst holds the first k requests for d (or until the proxy gives
// up), then answers 200.
func hangFirst(k int64, d time.Duration) func(int64, http.ResponseWriter, *http.Request) {
	return func(n int64, w http.ResponseWriter, r *http.Request) {
		if n <= k {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "ok\n")
	}
}

// mesh is a sidecar's outbound request path built from YAML.
type mesh struct {
	t       testing.TB
	url     string
	rt      *dataplane.Runtime
	shared  *httpproxy.Shared
	client  *http.Client
	handler http.Handler
}

// service is YAML for a Service on port 8080 with one WorkloadEntry per
// backend.
func service(name string, bs ...*backend) string {
	doc := fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {selector: {app: %s}, ports: [{name: http, port: 8080}]}\n", name, name)
	for i, b := range bs {
		doc += fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s-%d}\nspec: {address: 127.0.0.1, labels: {app: %s}, ports: {http: %d}}\n", name, i, name, b.port)
	}
	return doc
}

func newMesh(t testing.TB, yaml string) *mesh {
	t.Helper()
	return newMeshEdited(t, yaml, nil)
}

// newMeshEdited is newMesh with the generated xDS edited before the proxy
// compiles it (edit may be nil).
func newMeshEdited(t testing.TB, yaml string, edit func(*xdsgen.Resources)) *mesh {
	t.Helper()
	return newMeshConfigured(t, meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), yaml, edit)
}

// newMeshConfigured is newMeshEdited with the given mesh config.
func newMeshConfigured(t testing.TB, mc *meshv1alpha1.MeshConfig, yaml string, edit func(*xdsgen.Resources)) *mesh {
	t.Helper()
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "test.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	push := model.NewPushContext(model.PushOptions{Version: "1", Mesh: mc, Resources: dec.Resources})
	px := &model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:1"}
	res, err := xdsgen.Generate(push, px)
	if err != nil {
		t.Fatal(err)
	}
	if err := xdsgen.Validate(res); err != nil {
		t.Fatalf("generated config is invalid: %v", err)
	}
	if edit != nil {
		edit(res)
	}
	items := res.ByType()
	rt, _, err := dataplane.Compile(dataplane.CompileOptions{Resources: xdsclient.Resources{Items: items}, Stats: dataplane.NewStatsStore()})
	if err != nil {
		t.Fatalf("the proxy rejects the generated config: %v", err)
	}
	var ptr atomic.Pointer[dataplane.Runtime]
	ptr.Store(rt)
	m := &mesh{t: t, rt: rt, shared: httpproxy.NewShared()}
	m.handler = httpproxy.New(httpproxy.Options{Listener: xdsgen.OutboundListenerName, Runtime: &ptr, Shared: m.shared})
	srv := httptest.NewServer(m.handler)
	t.Cleanup(srv.Close)
	m.url = srv.URL
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	m.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return m
}

type answer struct {
	status  int
	header  http.Header
	body    string
	latency time.Duration
}

func (m *mesh) do(method, host, path string, body []byte, hdr map[string]string) answer {
	m.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, m.url+path, rd)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := m.client.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b), latency: time.Since(start)}
}

func (m *mesh) get(host, path string) answer { return m.do("GET", host, path, nil, nil) }

// clusterStat reads a counter the way /stats names it, from the cluster's
// counters and the request path's.
func (m *mesh) stat(name string) uint64 {
	var b strings.Builder
	m.shared.Stats.WriteText(&b)
	for _, c := range m.rt.Clusters {
		for _, kv := range c.Stats.StatValues() {
			fmt.Fprintf(&b, "cluster.%s.%s: %d\n", c.Name, kv[0], kv[1])
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && k == name {
			var n uint64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

const webCluster = "outbound|8080||web.default.svc.cluster.local"

func vs(http string) string {
	return "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web]\n  http:\n" + http
}

func TestRouteTimeout504(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", hangFirst(1000, 5*time.Second))
	m := newMesh(t, service("web", web)+vs(`  - timeout: 300ms
    retries: {attempts: 0}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/slow")
	if a.status != 504 || a.header.Get(httpfilter.ResponseFlagsHeader) != "UT" {
		t.Fatalf("want 504 with flag UT, got %d %v %q", a.status, a.header, a.body)
	}
	if !strings.Contains(a.body, "upstream request timeout") || !strings.Contains(a.body, webCluster) {
		t.Errorf("the answer must say why and name the cluster: %q", a.body)
	}
	if a.latency < 300*time.Millisecond || a.latency > 3*time.Second {
		t.Errorf("answered after %v; the route timeout is 300ms", a.latency)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_timeout"); n != 1 {
		t.Errorf("upstream_rq_timeout = %d, want 1", n)
	}
	if n := m.stat("http.outbound.response_flags.UT"); n != 1 {
		t.Errorf("response_flags.UT = %d, want 1", n)
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", failFirst(2, 503))
	m := newMesh(t, service("web", web)+vs(`  - retries: {attempts: 3, retryOn: "503"}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/flaky")
	if a.status != 200 {
		t.Fatalf("want 200 after two retries, got %d %q", a.status, a.body)
	}
	got := web.seen()
	if len(got) != 3 {
		t.Fatalf("backend saw %d attempts, want 3", len(got))
	}
	for i, s := range got {
		if s.attempt != fmt.Sprint(i+1) {
			t.Errorf("attempt %d carried x-envoy-attempt-count %q", i+1, s.attempt)
		}
	}
	if a.header.Get(httpfilter.ResponseFlagsHeader) != "" {
		t.Errorf("a retried success has no response flag: %v", a.header)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_retry"); n != 2 {
		t.Errorf("upstream_rq_retry = %d, want 2", n)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_retry_success"); n != 1 {
		t.Errorf("upstream_rq_retry_success = %d, want 1", n)
	}
}

func TestRetryLimitExceeded(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", failFirst(1000, 503))
	m := newMesh(t, service("web", web)+vs(`  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/down")
	// Envoy passes the last upstream answer on when retries run out.
	if a.status != 503 || !strings.Contains(a.body, "failing on purpose") || a.header.Get(httpfilter.ResponseFlagsHeader) != "URX" {
		t.Fatalf("want the upstream's 503 with flag URX, got %d %v %q", a.status, a.header, a.body)
	}
	if n := web.count.Load(); n != 3 {
		t.Errorf("backend saw %d attempts, want 1 + 2 retries", n)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_retry_limit_exceeded"); n != 1 {
		t.Errorf("upstream_rq_retry_limit_exceeded = %d", n)
	}
	if n := m.stat("http.outbound.response_flags.URX"); n != 1 {
		t.Errorf("response_flags.URX = %d", n)
	}
}

// TestDefaultRetryPolicy: without a retries block Istio's default applies:
// a connect failure is retried (on another host), a 503 is not (Istio 1.24+).
func TestDefaultRetryPolicy(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	dead := newBackend(t, "dead", ok)
	dead.srv.Close() // its port now refuses connections
	flaky := newBackend(t, "flaky", failFirst(1, 503))
	// Round robin makes the retry's host certain (see the e2e test of the
	// same name for why).
	m := newMesh(t, service("web", dead, web)+service("flaky", flaky)+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec: {host: web, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
`)
	for i := range 10 {
		if a := m.get("web:8080", "/"); a.status != 200 {
			t.Fatalf("request %d: %d %q; a connection refused must be retried on the live host", i, a.status, a.body)
		}
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_retry"); n == 0 {
		t.Errorf("no retries counted though one of two hosts refuses connections")
	}
	if a := m.get("flaky:8080", "/"); a.status != 503 || flaky.count.Load() != 1 {
		t.Errorf("the default policy must not retry a 503: got %d after %d attempts", a.status, flaky.count.Load())
	}
}

func TestPerTryTimeout(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", hangFirst(1, 10*time.Second))
	m := newMesh(t, service("web", web)+vs(`  - retries: {attempts: 2, perTryTimeout: 200ms, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/")
	if a.status != 200 {
		t.Fatalf("want 200 from the retry, got %d %q", a.status, a.body)
	}
	if a.latency < 200*time.Millisecond || a.latency > 5*time.Second {
		t.Errorf("answered after %v; the first try should have been cut at 200ms", a.latency)
	}
	if n := web.count.Load(); n != 2 {
		t.Errorf("backend saw %d attempts, want 2", n)
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_per_try_timeout"); n != 1 {
		t.Errorf("upstream_rq_per_try_timeout = %d", n)
	}
}

// TestPerTryTimeoutNotAfterHeaders: a response whose headers came in time
// may stream past the per-try timeout (Envoy's per-try timeout ends with
// the response headers).
func TestPerTryTimeoutNotAfterHeaders(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(400 * time.Millisecond)
		io.WriteString(w, "late body\n")
	})
	m := newMesh(t, service("web", web)+vs(`  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/")
	if a.status != 200 || a.body != "late body\n" || web.count.Load() != 1 {
		t.Fatalf("got %d %q after %d attempts", a.status, a.body, web.count.Load())
	}
}

// TestRetriesWithinRouteTimeout: however many retries are allowed, the
// route timeout bounds them all.
func TestRetriesWithinRouteTimeout(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", hangFirst(1000, 10*time.Second))
	m := newMesh(t, service("web", web)+vs(`  - timeout: 700ms
    retries: {attempts: 10, perTryTimeout: 300ms, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/")
	if a.status != 504 || a.header.Get(httpfilter.ResponseFlagsHeader) != "UT" {
		t.Fatalf("want 504 UT, got %d %v %q", a.status, a.header, a.body)
	}
	if a.latency < 700*time.Millisecond || a.latency > 4*time.Second {
		t.Errorf("answered after %v with a 700ms route timeout", a.latency)
	}
	// 700ms / 300ms per try: a third try starts at most.
	if n := web.count.Load(); n < 2 || n > 3 {
		t.Errorf("backend saw %d attempts, want 2 or 3", n)
	}
}

// TestRetryReplaysBody: a retried POST carries the whole body again; a
// body over the buffer limit is sent once and not retried.
func TestRetryReplaysBody(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", failFirst(1, 503))
	big := newBackend(t, "big", failFirst(1, 503))
	m := newMesh(t, service("web", web)+service("big", big)+vs(`  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: web}}]
`)+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: big}
spec:
  hosts: [big]
  http:
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: big}}]
`)
	payload := bytes.Repeat([]byte("sluice!"), 100_000) // 700 kB, under 1 MiB
	a := m.do("POST", "web:8080", "/upload", payload, nil)
	if a.status != 200 {
		t.Fatalf("POST: %d %q", a.status, a.body)
	}
	got := web.seen()
	if len(got) != 2 || sha256.Sum256(got[0].body) != sha256.Sum256(payload) || sha256.Sum256(got[1].body) != sha256.Sum256(payload) {
		t.Fatalf("attempts saw bodies of %v bytes, want two of %d", lens(got), len(payload))
	}
	huge := bytes.Repeat([]byte("x"), 2<<20) // over the 1 MiB default
	a = m.do("POST", "big:8080", "/upload", huge, nil)
	if a.status != 503 || big.count.Load() != 1 {
		t.Fatalf("a body over the buffer limit must not be retried: %d after %d attempts", a.status, big.count.Load())
	}
	if got := big.seen(); len(got[0].body) != len(huge) {
		t.Fatalf("the large body arrived with %d bytes", len(got[0].body))
	}
}

func lens(s []seen) []int {
	var out []int
	for _, x := range s {
		out = append(out, len(x.body))
	}
	return out
}

// TestFaultAbortPercentage: 1000 requests against a 25% abort; the count
// must be within 5 standard deviations (sd = sqrt(1000*.25*.75) = 13.7).
// Aborted requests never reach the backend.
func TestFaultAbortPercentage(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	m := newMesh(t, service("web", web)+vs(`  - fault: {abort: {httpStatus: 418, percentage: {value: 25}}}
    route: [{destination: {host: web}}]
`))
	const n = 1000
	var aborted, served atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				a := m.get("web:8080", "/")
				switch {
				case a.status == 418 && a.header.Get(httpfilter.ResponseFlagsHeader) == "FI" && strings.Contains(a.body, "fault filter abort"):
					aborted.Add(1)
				case a.status == 200:
					served.Add(1)
				default:
					t.Errorf("unexpected answer %d %v %q", a.status, a.header, a.body)
				}
			}
		}()
	}
	wg.Wait()
	if d := aborted.Load() - 250; d < -69 || d > 69 {
		t.Errorf("%d of %d aborted; expected 250 ± 69", aborted.Load(), n)
	}
	if web.count.Load() != served.Load() {
		t.Errorf("backend saw %d requests, %d were served: aborts must not reach it", web.count.Load(), served.Load())
	}
	if got := m.stat("http.outbound.fault.aborts_injected"); got != uint64(aborted.Load()) {
		t.Errorf("aborts_injected = %d, aborted %d", got, aborted.Load())
	}
}

// TestFaultNotRetried: an injected 503 is answered once, whatever the
// retry policy, and nothing reaches the backend.
func TestFaultNotRetried(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	m := newMesh(t, service("web", web)+vs(`  - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    retries: {attempts: 5, retryOn: 5xx}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/")
	if a.status != 503 || a.header.Get(httpfilter.ResponseFlagsHeader) != "FI" || web.count.Load() != 0 {
		t.Fatalf("got %d %v, backend saw %d", a.status, a.header, web.count.Load())
	}
	if n := m.stat("cluster." + webCluster + ".upstream_rq_retry"); n != 0 {
		t.Errorf("upstream_rq_retry = %d for an injected fault", n)
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	m := newMesh(t, service("web", web)+vs(`  - match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /unset}}]
    fault: {delay: {fixedDelay: 5s}}
    route: [{destination: {host: web}}]
  - timeout: 100ms
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/")
	// The delay comes before the router, so it does not count against the
	// route timeout (as in Envoy).
	if a.status != 200 || a.header.Get(httpfilter.ResponseFlagsHeader) != "DI" {
		t.Fatalf("got %d %v %q", a.status, a.header, a.body)
	}
	if a.latency < 400*time.Millisecond || a.latency > 4*time.Second {
		t.Errorf("latency %v with a 400ms delay", a.latency)
	}
	if n := m.stat("http.outbound.fault.delays_injected"); n != 1 {
		t.Errorf("delays_injected = %d", n)
	}
	// No percentage: as Istio documents and Envoy does, nothing is delayed.
	if a := m.get("web:8080", "/unset"); a.status != 200 || a.latency > 3*time.Second {
		t.Errorf("a delay without a percentage fired: %d after %v", a.status, a.latency)
	}
	a = m.get("web:8080", "/grpc")
	if a.status != 200 || a.header.Get("Grpc-Status") != "14" || a.header.Get("Content-Type") != "application/grpc" {
		t.Errorf("gRPC abort: %d %v", a.status, a.header)
	}
}

// TestMirror: the shadow backend gets a copy with "-shadow" appended to
// the host; the client only sees the primary's answer, and a POST body is
// mirrored whole.
func TestMirror(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	shadowed := make(chan seen, 10)
	shadow := newBackend(t, "shadow", func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500) // must never reach the client
	})
	shadow.serve = func(n int64, w http.ResponseWriter, r *http.Request) {
		s := shadow.seen()
		shadowed <- s[len(s)-1]
		w.WriteHeader(500)
	}
	m := newMesh(t, service("web", web)+service("mirror", shadow)+vs(`  - match: [{uri: {prefix: /none}}]
    mirror: {host: mirror}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: web}}]
  - mirror: {host: mirror}
    route: [{destination: {host: web}}]
`))
	a := m.get("web:8080", "/get")
	if a.status != 200 || a.header.Get("X-Backend") != "web" {
		t.Fatalf("client got %d from %q", a.status, a.header.Get("X-Backend"))
	}
	select {
	case s := <-shadowed:
		if s.host != "web-shadow:8080" || s.path != "/get" {
			t.Errorf("the mirror got host %q path %q, want web-shadow:8080 /get", s.host, s.path)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mirror never arrived")
	}
	payload := bytes.Repeat([]byte("m"), 10_000)
	if a := m.do("POST", "web:8080", "/post", payload, nil); a.status != 200 {
		t.Fatalf("POST: %d", a.status)
	}
	select {
	case s := <-shadowed:
		if !bytes.Equal(s.body, payload) {
			t.Errorf("the mirrored POST carried %d bytes, want %d", len(s.body), len(payload))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mirrored POST never arrived")
	}
	m.get("web:8080", "/none")
	time.Sleep(200 * time.Millisecond)
	if n := shadow.count.Load(); n != 2 {
		t.Errorf("shadow saw %d requests, want 2 (mirrorPercentage 0 sends none)", n)
	}
	if n := m.stat("sluice.mirror.sent"); n != 2 {
		t.Errorf("sluice.mirror.sent = %d", n)
	}
}

// TestMirrorSlowTargetGetsEveryCopy: a mirror target that answers slowly
// still receives every mirrored copy while its cluster's circuit breakers
// allow (Istio's defaults: 1024 in flight), with no proxy-wide cap, and the
// primary is never slowed.
func TestMirrorSlowTargetGetsEveryCopy(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	release := make(chan struct{})
	shadow := newBackend(t, "shadow", func(_ int64, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	m := newMesh(t, service("web", web)+service("mirror", shadow)+vs(`  - mirror: {host: mirror}
    route: [{destination: {host: web}}]
`))
	const n = 150 // more than the old fixed cap of 64
	for i := range n {
		if a := m.get("web:8080", "/"); a.status != 200 || a.latency > 3*time.Second {
			t.Fatalf("request %d: %d after %v", i, a.status, a.latency)
		}
	}
	if err := waitFor(5*time.Second, func() bool { return shadow.count.Load() == n }); err != nil {
		t.Fatalf("the slow mirror target received %d of %d copies", shadow.count.Load(), n)
	}
	if got := m.shared.MirrorsInFlight(); got != n {
		t.Errorf("%d mirrors in flight, want %d", got, n)
	}
	if d := m.stat("sluice.mirror.dropped_overflow"); d != 0 {
		t.Errorf("dropped_overflow = %d, want 0", d)
	}
}

// TestMirrorBoundedByClusterLimits: the mirror cluster's own circuit
// breakers bound the copies in flight; the ones they refuse are dropped
// and counted, and the primary is never slowed.
func TestMirrorBoundedByClusterLimits(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	release := make(chan struct{})
	shadow := newBackend(t, "shadow", func(_ int64, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	m := newMesh(t, service("web", web)+service("mirror", shadow)+vs(`  - mirror: {host: mirror}
    route: [{destination: {host: web}}]
`)+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mirror}
spec:
  host: mirror
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 4}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 4}
`)
	const n = 20
	for i := range n {
		if a := m.get("web:8080", "/"); a.status != 200 || a.latency > 3*time.Second {
			t.Fatalf("request %d: %d after %v", i, a.status, a.latency)
		}
		// The first copies each wait for their connection to be dialled
		// (pending, as Envoy counts them, and the pending queue holds
		// one): let each reach the target before the next is mirrored.
		if i < 4 {
			if err := waitFor(5*time.Second, func() bool { return shadow.count.Load() == int64(i+1) }); err != nil {
				t.Fatalf("copy %d never reached the target: %v", i+1, err)
			}
		}
	}
	// At most 4 reach the target and at most one more waits; the rest are
	// refused by the breakers.
	if err := waitFor(5*time.Second, func() bool { return m.stat("sluice.mirror.dropped_overflow") >= n-5 }); err != nil {
		t.Fatalf("dropped_overflow = %d, want at least %d", m.stat("sluice.mirror.dropped_overflow"), n-5)
	}
	time.Sleep(100 * time.Millisecond)
	if got := shadow.count.Load(); got != 4 {
		t.Errorf("the mirror target got %d copies at once, want its cluster's limit of 4", got)
	}
}

func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// TestNoClusterAndNoRouteFlags: the proxy's own answers say why.
func TestNoClusterAndNoRouteFlags(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", ok)
	m := newMesh(t, service("web", web)+vs(`  - route: [{destination: {host: ghost}}]
`)+"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: nr}\nspec:\n  hosts: [nr.example]\n  http:\n  - match: [{uri: {exact: /only}}]\n    route: [{destination: {host: web}}]\n")
	a := m.get("web:8080", "/")
	if a.status != 503 || a.header.Get(httpfilter.ResponseFlagsHeader) != "NC" || !strings.Contains(a.body, "ghost") {
		t.Errorf("missing cluster: %d %v %q", a.status, a.header, a.body)
	}
	a = m.get("nr.example", "/other")
	if a.status != 404 || a.header.Get(httpfilter.ResponseFlagsHeader) != "NR" {
		t.Errorf("no route: %d %v", a.status, a.header)
	}
	if m.stat("http.outbound.response_flags.NC") != 1 || m.stat("http.outbound.response_flags.NR") != 1 {
		t.Errorf("flags not counted")
	}
}

// TestConnectFailureReason: the 503 for an unreachable host names the
// cluster, the host and the cause, with UF (and URX once retries ran out).
func TestConnectFailureReason(t *testing.T) {
	t.Parallel()
	dead := newBackend(t, "dead", ok)
	dead.srv.Close()
	m := newMesh(t, service("web", dead))
	a := m.get("web:8080", "/")
	if a.status != 503 || a.header.Get(httpfilter.ResponseFlagsHeader) != "UF,URX" {
		t.Fatalf("got %d %v %q", a.status, a.header, a.body)
	}
	if !strings.Contains(a.body, "upstream connect error") || !strings.Contains(a.body, webCluster) ||
		!strings.Contains(a.body, fmt.Sprintf("127.0.0.1:%d", dead.port)) || !strings.Contains(a.body, "after 3 attempts") {
		t.Errorf("reason %q", a.body)
	}
}

// TestRetryPreviousHosts: with the previous_hosts predicate a retry goes
// to a host not tried yet. Two hosts that always fail, random balancing,
// one retry: without the predicate the retry repeats the host half the
// time; with it (5 re-picks) 1 time in 32. Over 40 requests the bounds
// below fail by chance with probability below 1e-4 each.
func TestRetryPreviousHosts(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a", failFirst(1<<30, 503))
	b := newBackend(t, "b", failFirst(1<<30, 503))
	m := newMesh(t, service("web", a, b)+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec: {host: web, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
`+vs(`  - match: [{uri: {prefix: /same}}]
    retries: {attempts: 1, retryOn: "503", retryIgnorePreviousHosts: false}
    route: [{destination: {host: web}}]
  - retries: {attempts: 1, retryOn: "503"}
    route: [{destination: {host: web}}]
`))
	repeats := func(prefix string) int {
		byPath := map[string]int{}
		for _, be := range []*backend{a, b} {
			for _, s := range be.seen() {
				if strings.HasPrefix(s.path, prefix) {
					byPath[s.path+" "+be.name]++
				}
			}
		}
		n := 0
		for _, c := range byPath {
			if c > 1 {
				n++
			}
		}
		return n
	}
	const n = 40
	for i := range n {
		m.get("web:8080", fmt.Sprintf("/other/%d", i))
		m.get("web:8080", fmt.Sprintf("/same/%d", i))
	}
	if r := repeats("/other/"); r > 7 {
		t.Errorf("with previous_hosts %d of %d retries went back to the host that failed (expected about %d)", r, n, n/32)
	}
	if r := repeats("/same/"); r < 8 {
		t.Errorf("without the predicate only %d of %d retries repeated the host (expected about %d): is the predicate applied anyway?", r, n, n/2)
	}
}
