package e2e

import (
	"context"
	"errors"
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
	hc               *http.Client
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
	pm := &promMesh{m: m, hc: &http.Client{Timeout: 5 * time.Second}}
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

// httpStep is one request of a round: sent to a sidecar's outbound
// address (or straight to an address), with a Host, expecting a status.
type httpStep struct {
	what, addr, host, path string
	code                   int
}

// round sends one request of each kind the dashboards show; with
// failures false it stops at the first one that does not answer as it
// should (used to wait for convergence).
func (pm *promMesh) round(failures bool) error {
	gw, bin := pm.gw.Address(80), pm.httpbin.OutboundAddress
	steps := []httpStep{
		// sleep → httpbin over mTLS (auto mTLS); sleep → plain in plaintext.
		{"sleep→httpbin", pm.sleep.OutboundAddress, "httpbin:8000", "/get", 200},
		{"sleep→plain", pm.sleep.OutboundAddress, "plain:8000", "/", 200},
		// No route: 404 NR; no endpoints: 503 UH.
		{"sleep→httpbin/nope", pm.sleep.OutboundAddress, "httpbin:8000", "/nope", 404},
		{"sleep→empty", pm.sleep.OutboundAddress, "empty:8000", "/", 503},
		// The gateway: routed to httpbin, and a host it has no route for.
		{"gateway→httpbin", gw, "web.example.com", "/get", 200},
		{"gateway→nothing", gw, "other.example.com", "/", 404},
		// A client without a sidecar straight to httpbin's inbound
		// (PERMISSIVE): plaintext.
		{"plaintext→httpbin", pm.httpbin.InboundAddress, "httpbin.default.svc.cluster.local:8000", "/get", 200},
		// httpbin's app calls out over its own sidecar.
		{"httpbin→plain", bin, "plain:8000", "/", 200},
		{"httpbin→httpbin", bin, "httpbin:8000", "/get", 200},
	}
	var errs []string
	for _, st := range steps {
		if err := pm.send(st); err != nil {
			if errs = append(errs, err.Error()); !failures {
				return err
			}
		}
	}
	// TCP: sleep and httpbin to httpbin:9000 through their sidecars
	// (mTLS), and plaintext straight to httpbin's TCP inbound.
	for what, addr := range map[string]string{"sleep→httpbin:9000": pm.sleepTCP, "httpbin→httpbin:9000": pm.binTCP,
		"plaintext→httpbin:9000": pm.httpbin.Ports[0].InboundAddress} {
		if _, err := tcpLine(addr, "hello"); err != nil {
			if errs = append(errs, what+": "+err.Error()); !failures {
				return errors.New(errs[0])
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// send makes one step's request.
func (pm *promMesh) send(st httpStep) error {
	req, _ := http.NewRequest("GET", "http://"+st.addr+st.path, nil)
	req.Host = st.host
	r, err := testenv.Send(pm.hc, req)
	if err != nil {
		return fmt.Errorf("%s: %w", st.what, err)
	}
	if r.Status != st.code {
		return fmt.Errorf("%s: status %d, want %d: %v", st.what, r.Status, st.code, r)
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
			var vars *grafanaVars
			waitProm(t, file+" variables", func() error {
				vars = newGrafanaVars(prom, chosen[file])
				return vars.resolve(d)
			})
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
		// The client side names both identities of its upstream mTLS
		// connection (HTTP and TCP), keeps the policy unknown, and
		// leaves plaintext's unknown.
		`istio_requests_total{reporter="source", source_workload="sleep", destination_workload="httpbin-v1", connection_security_policy="unknown", source_principal="spiffe://cluster.local/ns/default/sa/default", destination_principal="spiffe://cluster.local/ns/default/sa/default"}`,
		`istio_tcp_sent_bytes_total{reporter="source", source_workload="sleep", source_principal="spiffe://cluster.local/ns/default/sa/default", destination_principal="spiffe://cluster.local/ns/default/sa/default"}`,
		`istio_requests_total{reporter="source", source_workload="sleep", destination_workload="plain-v1", source_principal="unknown", destination_principal="unknown"}`,
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
