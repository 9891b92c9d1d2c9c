package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// certsOf reads a proxy's /certs: its workload certificate's serial and
// issuer, and how many roots it trusts.
func certsOf(admin string) (serial, issuer string, roots int, err error) {
	resp, err := http.Get("http://" + admin + "/certs")
	if err != nil {
		return "", "", 0, err
	}
	defer resp.Body.Close()
	var v identity.CertsView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", "", 0, err
	}
	if len(v.Certificates) == 0 || len(v.Certificates[0].CertChain) == 0 {
		return "", "", 0, fmt.Errorf("%s: no certificate yet", admin)
	}
	c := v.Certificates[0]
	return c.CertChain[0].SerialNumber, c.CertChain[0].Issuer, len(c.CACert), nil
}

// certWatch records, once a second, the serials and issuers a proxy's
// /certs shows.
type certWatch struct {
	admin string
	mu    sync.Mutex
	// serials in the order first seen; issuerOf each serial.
	serials  []string
	issuerOf map[string]string
	maxRoots int
}

func (w *certWatch) poll() {
	serial, issuer, roots, err := certsOf(w.admin)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.issuerOf[serial]; !ok {
		w.serials = append(w.serials, serial)
		w.issuerOf[serial] = issuer
	}
	w.maxRoots = max(w.maxRoots, roots)
}

// TestCertificateRotationUnderLoad: one minute of steady load (fortio)
// from a sidecar over mesh mTLS (DestinationRule ISTIO_MUTUAL) to a
// gateway terminating ISTIO_MUTUAL, with 20s workload certificates and a
// root rotation (`sluice ca rotate`) a third of the way in, xDS and the
// CA over TLS with the bootstrap token. Every request must succeed while
// both proxies renew several times (serials seen changing on /certs) and
// move to the new root (issuer changes, two roots trusted).
func TestCertificateRotationUnderLoad(t *testing.T) {
	const backendFQDN = "backend.default.svc.cluster.local"
	fortio, err := exec.LookPath("fortio")
	if err != nil {
		t.Fatalf("fortio not found (.ci/run installs it; or go install fortio.org/fortio@v1.68.2): %v", err)
	}
	caDir := t.TempDir()
	m := testenv.NewMesh(t, testenv.MeshOptions{XDSTLS: true,
		ControlArgs: []string{"--ca-dir", caDir, "--workload-cert-ttl", "20s"}})
	service(t, m, "backend", map[string]int{"http": 80})
	gwPort := testenv.FreePort()
	gw := m.AddGateway(testenv.GatewayOptions{Name: "mesh-gateway", Labels: map[string]string{"istio": "meshgateway"},
		ServiceAccount: "mesh-gateway-sa"})
	m.WriteConfig("mtls.yaml", gatewayMTLSConfig(gwPort))
	c := m.AddClient(testenv.ClientOptions{Name: "load"})
	m.WaitConverged(func() error {
		// The FQDN: the gateway's server hosts name it alone, and the
		// sidecar forwards the Host it was given.
		if err := allServedBy(c, 3, backendFQDN, "/", nil, "backend", ""); err != nil {
			return err
		}
		if n := statValue(t, "http://"+gw.AdminAddress+"/stats", "cluster.outbound|80||backend.default.svc.cluster.local.upstream_rq_total"); n == 0 {
			return fmt.Errorf("requests do not pass the gateway")
		}
		return nil
	}, convergeTimeout)

	watches := []*certWatch{{admin: c.AdminAddress, issuerOf: map[string]string{}}, {admin: gw.AdminAddress, issuerOf: map[string]string{}}}
	stop := make(chan struct{})
	var pollers sync.WaitGroup
	pollers.Add(1)
	go func() {
		defer pollers.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, w := range watches {
				w.poll()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	stopPolling := sync.OnceFunc(func() { close(stop); pollers.Wait() })
	defer stopPolling()
	res := runFortioWithRotation(t, fortio, "http://"+c.OutboundAddress+"/", backendFQDN, caDir)
	stopPolling()
	total := res.DurationHistogram.Count
	t.Logf("fortio: %d requests, %.1f qps, codes %v", total, res.ActualQPS, res.RetCodes)
	if total < 3000 || res.RetCodes["200"] != total {
		t.Errorf("want every one of at least 3000 requests answered 200, got %d of %d (codes %v)", res.RetCodes["200"], total, res.RetCodes)
	}
	// maxRequestsPerConnection 200: the client sidecar opened new mTLS
	// connections to the gateway all through the run, across renewals and
	// the rotation.
	cx := statValue(t, "http://"+c.AdminAddress+"/stats", fmt.Sprintf("cluster.outbound|%d||mesh-gateway.istio-system.svc.cluster.local.upstream_cx_total", gwPort))
	t.Logf("client sidecar: %d mTLS connections to the gateway", cx)
	if cx < total/200 {
		t.Errorf("%d upstream connections for %d requests at 200 per connection: handshakes did not continue through the run", cx, total)
	}
	for _, w := range watches {
		w.check(t)
	}
	requireSyncedNoNACK(t, m)
}

// gatewayMTLSConfig routes the mesh's calls to backend through a gateway
// serving ISTIO_MUTUAL on gwPort, reached with a DestinationRule
// ISTIO_MUTUAL, as Istio's mesh-internal gateway setups do.
func gatewayMTLSConfig(gwPort int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: mesh-gateway, namespace: istio-system}
spec:
  selector: {istio: meshgateway}
  ports: [{name: https, port: %[1]d}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mesh-gateway, namespace: istio-system}
spec: {address: 127.0.0.1, labels: {istio: meshgateway}, ports: {https: %[1]d}, serviceAccount: mesh-gateway-sa}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mesh-gateway, namespace: default}
spec:
  selector: {istio: meshgateway}
  servers:
  - port: {number: %[1]d, name: https, protocol: HTTPS}
    hosts: [backend.default.svc.cluster.local]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-gateway-mtls, namespace: default}
spec:
  host: mesh-gateway.istio-system.svc.cluster.local
  trafficPolicy:
    # New upstream connections (and mTLS handshakes) all through the run,
    # beside long-lived ones.
    connectionPool: {http: {maxRequestsPerConnection: 200}}
    tls: {mode: ISTIO_MUTUAL, sni: backend.default.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend-via-gateway, namespace: default}
spec:
  hosts: [backend.default.svc.cluster.local]
  gateways: [mesh-gateway, mesh]
  http:
  - match: [{gateways: [mesh]}]
    route: [{destination: {host: mesh-gateway.istio-system.svc.cluster.local, port: {number: %[1]d}}}]
  - match: [{gateways: [mesh-gateway]}]
    route: [{destination: {host: backend.default.svc.cluster.local, port: {number: 80}}}]
`, gwPort)
}

// fortioResult is what the test reads of fortio's JSON.
type fortioResult struct {
	DurationHistogram struct{ Count int }
	RetCodes          map[string]int
	ActualQPS         float64
}

// runFortioWithRotation runs one minute of load on url with Host host and
// rotates the CA's root in caDir 20s in.
func runFortioWithRotation(t *testing.T, fortio, url, host, caDir string) fortioResult {
	t.Helper()
	result := filepath.Join(t.TempDir(), "fortio.json")
	load := exec.Command(fortio, "load", "-c", "4", "-qps", "100", "-t", "60s", "-H", "Host: "+host,
		"-json", result, "-quiet", url)
	var loadOut strings.Builder
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	rotate := exec.Command(testenv.Binary(t), "ca", "rotate", "--ca-dir", caDir)
	if out, err := rotate.CombinedOutput(); err != nil {
		t.Errorf("sluice ca rotate: %v\n%s", err, out)
	} else {
		t.Logf("rotated at %s: %s", time.Now().Format(time.TimeOnly), out)
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("fortio: %v\n%s", err, loadOut.String())
	}
	var res fortioResult
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// check requires several certificates over the run, from the old and the
// new root, with both roots trusted at some point.
func (w *certWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	issuers := map[string]bool{}
	for _, s := range w.serials {
		issuers[w.issuerOf[s]] = true
	}
	t.Logf("%s: serials %v, issuers %d, roots trusted %d", w.admin, w.serials, len(issuers), w.maxRoots)
	// 20s certificates renewed at half life over a minute, plus the
	// renewal for the new root: at least four certificates.
	if len(w.serials) < 4 {
		t.Errorf("%s: %d certificates seen over the run, want the serial to change at least 3 times", w.admin, len(w.serials))
	}
	if len(issuers) != 2 || w.maxRoots != 2 {
		t.Errorf("%s: certificates from %d roots with %d trusted, want the old and the new root", w.admin, len(issuers), w.maxRoots)
	}
}
