package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// promMeshConfig: httpbin with an HTTP and a TCP port (its VirtualService
// routes /get only, so another path is 404 NR), plain (a workload
// without the tlsMode label: plaintext), empty (no endpoints: 503 UH), and
// an ingress Gateway for web.example.com routed to httpbin.
const promMeshConfig = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /get}}]
    route: [{destination: {host: httpbin, port: {number: 8000}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [web.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [istio-system/ingress]
  http:
  - route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
`

// promMesh is the mesh the Prometheus test scrapes.
type promMesh struct {
	m                *testenv.Mesh
	sleep            *testenv.Client
	httpbin, plain   *testenv.Workload
	gw               *testenv.Gateway
	sleepTCP, binTCP string // the outbound TCP listeners for httpbin:9000
	churned          time.Time
	churns           int
}

// startPromMesh starts the control plane, httpbin (HTTP and TCP, with its
// own outbound TCP listener), plain, the sleep client and an ingress
// gateway, and waits until every path the traffic takes works.
func startPromMesh(t *testing.T) *promMesh {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("svc.yaml", testenv.ServiceYAML("httpbin", "default", map[string]string{"app": "httpbin"},
		map[string]int{"http": 8000, "tcp": 9000})+
		"---\n"+testenv.ServiceYAML("plain", "default", map[string]string{"app": "plain"}, map[string]int{"http": 8000})+
		"---\n"+testenv.ServiceYAML("empty", "default", map[string]string{"app": "empty"}, map[string]int{"http": 8000})+
		"---\n"+promMeshConfig)
	pm := &promMesh{m: m}
	sleepIP, binIP := testenv.LoopbackIP(), testenv.LoopbackIP()
	pm.httpbin = m.AddWorkload(testenv.WorkloadOptions{Service: "httpbin", Version: "v1", OutboundTCPIP: binIP,
		Ports: []testenv.WorkloadPort{{Names: []string{"tcp"}, TCPPrefix: "bin"}}})
	pm.plain = m.AddWorkload(testenv.WorkloadOptions{Service: "plain", Version: "v1", NoTLSModeLabel: true})
	pm.sleep = m.AddClient(testenv.ClientOptions{Name: "sleep", Labels: map[string]string{"app": "sleep", "version": "v1"},
		OutboundTCPIP: sleepIP})
	pm.gw = m.AddGateway(testenv.GatewayOptions{Name: "istio-ingressgateway", Labels: map[string]string{"istio": "ingressgateway"},
		PortOffset: testenv.FreePort() - 80})
	pm.sleepTCP, pm.binTCP = sleepIP+":9000", binIP+":9000"
	m.WaitConverged(func() error { return pm.round(false) }, convergeTimeout)
	return pm
}

// churn changes the config at most every 5s (a ServiceEntry's port), so
// pushes and their convergence keep being observed while the test reads
// the control plane's panels.
func (pm *promMesh) churn() {
	if time.Since(pm.churned) < 5*time.Second {
		return
	}
	pm.churned = time.Now()
	pm.churns++
	pm.m.WriteConfig("churn.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: churn, namespace: default}
spec:
  hosts: [churn.example.com]
  ports: [{number: %d, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.9}]
`, 8000+pm.churns))
}

// round sends one request of each kind the dashboards show; with
// failures false it stops at the first one that does not answer as it
// should (used to wait for convergence).
func (pm *promMesh) round(failures bool) error {
	check := func(what string, r *testenv.Response, err error, code int) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if r.Status != code {
			return fmt.Errorf("%s: status %d, want %d: %v", what, r.Status, code, r)
		}
		return nil
	}
	var errs []string
	add := func(err error) bool {
		if err != nil {
			errs = append(errs, err.Error())
		}
		return err != nil && !failures
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	direct := func(addr, host, path string) (*testenv.Response, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = host
		return testenv.Send(hc, req)
	}
	gw := pm.gw.Address(80)
	binOut := &testenv.Client{OutboundAddress: pm.httpbin.OutboundAddress, HTTP: hc}
	steps := []func() error{
		// sleep → httpbin over mTLS (auto mTLS), 200.
		func() error {
			r, err := pm.sleep.Get("httpbin:8000", "/get", nil)
			return check("sleep→httpbin", r, err, 200)
		},
		// sleep → plain in plaintext.
		func() error {
			r, err := pm.sleep.Get("plain:8000", "/", nil)
			return check("sleep→plain", r, err, 200)
		},
		// No route: 404 NR; no endpoints: 503 UH.
		func() error {
			r, err := pm.sleep.Get("httpbin:8000", "/nope", nil)
			return check("sleep→httpbin/nope", r, err, 404)
		},
		func() error {
			r, err := pm.sleep.Get("empty:8000", "/", nil)
			return check("sleep→empty", r, err, 503)
		},
		// The gateway: routed to httpbin, and a host it has no route for.
		func() error {
			r, err := direct(gw, "web.example.com", "/get")
			return check("gateway→httpbin", r, err, 200)
		},
		func() error {
			r, err := direct(gw, "other.example.com", "/")
			return check("gateway→nothing", r, err, 404)
		},
		// A client without a sidecar straight to httpbin's inbound
		// (PERMISSIVE): plaintext.
		func() error {
			r, err := direct(pm.httpbin.InboundAddress, "httpbin.default.svc.cluster.local:8000", "/get")
			return check("plaintext→httpbin", r, err, 200)
		},
		// httpbin's app calls out: plain over its own sidecar.
		func() error {
			r, err := binOut.Get("plain:8000", "/", nil)
			return check("httpbin→plain", r, err, 200)
		},
		func() error {
			r, err := binOut.Get("httpbin:8000", "/get", nil)
			return check("httpbin→httpbin", r, err, 200)
		},
		// TCP: sleep and httpbin to httpbin:9000 through their sidecars
		// (mTLS), and plaintext straight to httpbin's TCP inbound.
		func() error { _, err := tcpLine(pm.sleepTCP, "hello"); return wrap("sleep→httpbin:9000", err) },
		func() error { _, err := tcpLine(pm.binTCP, "hello"); return wrap("httpbin→httpbin:9000", err) },
		func() error {
			_, err := tcpLine(pm.httpbin.Ports[0].InboundAddress, "hello")
			return wrap("plaintext→httpbin:9000", err)
		},
	}
	for _, step := range steps {
		if add(step()) {
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// traffic runs rounds until ctx ends, every 250ms, so every counter
// moves between two scrapes.
func (pm *promMesh) traffic(ctx context.Context, t *testing.T) (stop func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lastErr error
	ctx, cancel := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := pm.round(true); err != nil {
				mu.Lock()
				lastErr = err
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if lastErr != nil {
			t.Errorf("traffic: %v", lastErr)
		}
	}
}

// TestPrometheusGrafana: a real Prometheus (Debian's) scrapes every proxy's
// admin /stats/prometheus and the control plane's /metrics every second
// while traffic runs through the mesh (sidecar to sidecar over mTLS, a
// gateway, plaintext, TCP, 404 NR, 503 UH). Then every panel query of
// every grafana/*.json, its template variables resolved as Grafana
// resolves them (query variables through Prometheus), answers data; and
// the labels distinguish the reporters, mutual_tls from none, the proxies'
// flags, and the version the proxies announce.
func TestPrometheusGrafana(t *testing.T) {
	bin := prometheusBinary(t)
	dashboards := readDashboards(t)
	pm := startPromMesh(t)
	prom := startPrometheus(t, bin, []scrapeJob{
		{name: "sluice-control", path: "/metrics", targets: []string{pm.m.HTTPAddress}},
		{name: "sluice-proxies", path: "/stats/prometheus", targets: []string{pm.sleep.AdminAddress,
			pm.httpbin.AdminAddress, pm.plain.AdminAddress, pm.gw.AdminAddress}},
	})
	stop := pm.traffic(context.Background(), t)
	defer stop()
	defer dumpSeries(t, prom)

	// Every target up.
	waitProm(t, "all 5 targets up", func() error {
		s, err := prom.query(`sum(up)`)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0].number() != 5 {
			return fmt.Errorf("sum(up) = %v", s)
		}
		return nil
	})

	chosen := map[string]map[string]string{
		"service.json":  {"service": "httpbin.default.svc.cluster.local"},
		"workload.json": {"namespace": "default", "workload": pm.httpbin.Name},
	}
	for file, d := range dashboards {
		t.Run(strings.TrimSuffix(file, ".json"), func(t *testing.T) {
			vars := newGrafanaVars(prom, chosen[file])
			waitProm(t, file+" variables", func() error { return vars.resolve(d) })
			queries := d.queries()
			pending := map[int]error{}
			for i := range queries {
				pending[i] = fmt.Errorf("not run")
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(pending) > 0 && time.Now().Before(deadline) {
				pm.churn()
				for i := range pending {
					if err := prom.hasData(vars.expand(queries[i].expr)); err == nil {
						delete(pending, i)
					} else {
						pending[i] = err
					}
				}
				time.Sleep(500 * time.Millisecond)
			}
			for i, err := range pending {
				t.Errorf("%s: panel %q: %s\n  query: %s", d.Title, queries[i].panel, err, vars.expand(queries[i].expr))
			}
			t.Logf("%s: %d panel queries answered data", d.Title, len(queries)-len(pending))
		})
	}

	// Labels, as Prometheus stored them.
	httpbin := `destination_service="httpbin.default.svc.cluster.local"`
	for _, q := range []string{
		// Both reporters fill both sides.
		`istio_requests_total{reporter="source", source_workload="sleep", destination_workload="httpbin-v1", ` + httpbin + `, response_code="200"}`,
		`istio_requests_total{reporter="destination", source_workload="sleep", destination_workload="httpbin-v1", ` + httpbin + `, response_code="200"}`,
		`istio_requests_total{reporter="source", source_workload="istio-ingressgateway", destination_workload="httpbin-v1"}`,
		// mTLS between sidecars, plaintext to plain and from outside.
		`istio_requests_total{reporter="destination", source_workload="sleep", destination_workload="httpbin-v1", connection_security_policy="mutual_tls", source_principal="spiffe://cluster.local/ns/default/sa/default"}`,
		`istio_requests_total{reporter="destination", source_workload="sleep", destination_workload="plain-v1", connection_security_policy="none"}`,
		`istio_requests_total{reporter="destination", source_workload="unknown", destination_workload="httpbin-v1", connection_security_policy="none"}`,
		`istio_tcp_sent_bytes_total{reporter="destination", destination_workload="httpbin-v1", connection_security_policy="mutual_tls", source_principal="spiffe://cluster.local/ns/default/sa/default"}`,
		`istio_tcp_received_bytes_total{reporter="destination", destination_workload="httpbin-v1", connection_security_policy="none"}`,
		// The proxies' own answers with their flags.
		`istio_requests_total{reporter="source", source_workload="sleep", response_code="404", response_flags="NR"}`,
		`istio_requests_total{reporter="source", source_workload="istio-ingressgateway", response_code="404", response_flags="NR"}`,
		`istio_requests_total{reporter="source", destination_service="empty.default.svc.cluster.local", response_code="503", response_flags="UH"}`,
		// The proxies announce their version; none connects without one.
		`pilot_xds{version!=""} == 4`,
	} {
		waitProm(t, q, func() error { return prom.hasData(q) })
	}
	if s, err := prom.query(`pilot_xds{version=""} > 0`); err != nil || len(s) != 0 {
		t.Errorf(`proxies without a version: %v %v`, s, err)
	}
}

// dumpSeries logs what Prometheus holds of the Istio metrics when the
// test failed.
func dumpSeries(t *testing.T, prom *prometheus) {
	if !t.Failed() {
		return
	}
	for _, q := range []string{`istio_requests_total`, `istio_tcp_sent_bytes_total`, `pilot_xds`} {
		s, err := prom.query(q)
		var lines []string
		for _, x := range s {
			lines = append(lines, x.text())
		}
		t.Logf("%s (%v):\n%s", q, err, strings.Join(lines, "\n"))
	}
}

// waitProm retries check until it passes or 30s have passed.
func waitProm(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 30s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
