package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestWorkloadPorts: one sidecar serves both ports of a workload, an HTTP
// port and a TCP port (two --inbound-address/--app-address pairs), each
// with its service port's protocol; a client sidecar reaches both.
func TestWorkloadPorts(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("db.yaml", testenv.ServiceYAML("db", "default", map[string]string{"app": "db"},
		map[string]int{"http": 8080, "tcp-data": 9000}))
	w := m.AddWorkload(testenv.WorkloadOptions{Service: "db", PortName: "http",
		Ports: []testenv.WorkloadPort{{Names: []string{"tcp-data"}, TCPPrefix: "db-tcp"}}})
	ip := "127.0.78.1"
	c := m.AddClient(testenv.ClientOptions{Name: "client", OutboundTCPIP: ip})
	m.WaitConverged(func() error { return allServedBy(c, 1, "db:8080", "/", nil, "db", "") }, convergeTimeout)
	m.WaitConverged(func() error {
		word, err := tcpLine(ip+":9000", "hello")
		if err == nil && word != "db-tcp" {
			return fmt.Errorf("TCP port answered by %q, want db-tcp", word)
		}
		return err
	}, convergeTimeout)
	if err := allServedBy(c, 10, "db:8080", "/x", nil, "db", ""); err != nil {
		t.Fatal(err)
	}
	// The TCP port is proxied as TCP (an HTTP listener would answer a bare
	// line with 400), straight at the sidecar's second inbound address too.
	if word, err := tcpLine(w.Ports[0].InboundAddress, "direct"); err != nil || word != "db-tcp" {
		t.Fatalf("second inbound address %s: %q %v", w.Ports[0].InboundAddress, word, err)
	}
	requireSyncedNoNACK(t, m)
}

// backend is a plain HTTP server of the test answering "<name> <path>".
func backend(t *testing.T, ln net.Listener, name string) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func localBackend(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend(t, ln, name)
	return ln.Addr().(*net.TCPAddr).Port
}

// expectBody waits until host answers status with a body starting with
// prefix (any body when prefix is empty).
func expectBody(m *testenv.Mesh, c *testenv.Client, host string, status int, prefix string) {
	m.WaitConverged(func() error {
		r, err := c.Get(host, "/p", nil)
		if err != nil {
			return err
		}
		if r.Status != status || !strings.HasPrefix(string(r.Body), prefix) {
			return fmt.Errorf("%s: want %d %q, got %s", host, status, prefix, r)
		}
		return nil
	}, convergeTimeout)
}

// TestSidecarEgressPorts: a Sidecar egress listener on port A imports its
// host on A only: A is routed to the service, port B of the same service
// gets the proxy's 502 under REGISTRY_ONLY and is passed through under
// ALLOW_ANY.
func TestSidecarEgressPorts(t *testing.T) {
	const name = "ports.example.com"
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := localBackend(t, "server-a"), localBackend(t, "server-b")
	m := testenv.NewMesh(t, testenv.MeshOptions{ProxyArgs: []string{"--hosts-file", hosts}})
	sidecar := func(mode string, bind ...string) string {
		bindField := ""
		if len(bind) > 0 {
			bindField = ", bind: " + bind[0]
		}
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ports, namespace: default}
spec:
  hosts: [%[1]s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: %[2]d, name: http-a, protocol: HTTP}, {number: %[3]d, name: http-b, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{port: {number: %[2]d, protocol: HTTP, name: http}%[5]s, hosts: ["./%[1]s"]}]
  outboundTrafficPolicy: {mode: %[4]s}
`, name, a, b, mode, bindField)
	}
	m.WriteConfig("egress.yaml", sidecar("REGISTRY_ONLY"))
	c := m.AddClient(testenv.ClientOptions{Name: "client"})
	hostA, hostB := fmt.Sprintf("%s:%d", name, a), fmt.Sprintf("%s:%d", name, b)
	// Port A is reachable by passthrough too until the Sidecar arrives;
	// once B is refused, A must go through its service cluster.
	expectBody(m, c, hostB, 502, "")
	stats := "http://" + c.AdminAddress + "/stats"
	clusterA := fmt.Sprintf("cluster.outbound|%d||%s.upstream_rq_total", a, name)
	before, passBefore := statValue(t, stats, clusterA), statValue(t, stats, "cluster.PassthroughCluster.upstream_rq_total")
	expectBody(m, c, hostA, 200, "server-a /p")
	if n := statValue(t, stats, clusterA); n != before+1 {
		t.Errorf("port %d: service cluster served %d requests, want 1", a, n-before)
	}
	if n := statValue(t, stats, "cluster.PassthroughCluster.upstream_rq_total"); n != passBefore {
		t.Errorf("port %d passed through under REGISTRY_ONLY", a)
	}

	m.WriteConfig("egress.yaml", sidecar("ALLOW_ANY"))
	expectBody(m, c, hostB, 200, "server-b /p")
	if n := statValue(t, stats, "cluster.PassthroughCluster.upstream_rq_total"); n == passBefore {
		t.Errorf("port %d reached its server but not through the passthrough cluster", b)
	}
	if n := statValue(t, stats, fmt.Sprintf("cluster.outbound|%d||%s.upstream_rq_total", b, name)); n != 0 {
		t.Errorf("port %d, which no egress listener covers, was routed to its service cluster %d times", b, n)
	}
	expectBody(m, c, hostA, 200, "server-a /p")

	// With bind, the listener gets a socket of its own at bind:A, where an
	// app that cannot name its destination's port reaches it by host alone.
	const bindIP = "127.0.79.1"
	m.WriteConfig("egress.yaml", sidecar("REGISTRY_ONLY", bindIP))
	bound := &testenv.Client{Name: "bound", OutboundAddress: fmt.Sprintf("%s:%d", bindIP, a), HTTP: c.HTTP}
	before = statValue(t, stats, clusterA)
	expectBody(m, bound, name, 200, "server-a /p")
	if n := statValue(t, stats, clusterA); n <= before {
		t.Errorf("the bound listener did not route through the service cluster")
	}
	expectBody(m, bound, "unknown.example.com", 502, "")
	requireSyncedNoNACK(t, m)
}

// TestSidecarIngress: a Sidecar ingress listener replaces the app address
// of its port: the workload's inbound port now forwards to a unix socket
// app, and a second ingress port with no --inbound-address binds at the
// proxy's IP and forwards to 127.0.0.1:P.
func TestSidecarIngress(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("svc.yaml", testenv.ServiceYAML("app", "default", map[string]string{"app": "app"},
		map[string]int{"http": 8080, "http-admin": 8081}))
	w := m.AddWorkload(testenv.WorkloadOptions{Service: "app", PortName: "http"})
	c := m.AddClient(testenv.ClientOptions{Name: "client"})
	m.WaitConverged(func() error { return allServedBy(c, 1, "app:8080", "/", nil, "app", "") }, convergeTimeout)

	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	backend(t, ln, "unix-app")
	admin := localBackend(t, "admin-app")
	adminPort := testenv.FreePort()
	// The workload's entry maps http-admin to the new ingress port, on the
	// proxy's IP (--ip, 127.0.0.1).
	m.WriteConfig(w.ConfigFile, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %[1]s, namespace: default}
spec:
  address: 127.0.0.1
  labels: {app: app}
  ports: {http: %[2]d, http-admin: %[3]d}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: app, namespace: default}
spec:
  workloadSelector: {labels: {app: app}}
  ingress:
  - {port: {number: %[2]d, protocol: HTTP, name: http}, defaultEndpoint: "unix://%[4]s"}
  - {port: {number: %[3]d, protocol: HTTP, name: http-admin}, defaultEndpoint: "127.0.0.1:%[5]d"}
`, w.Name, w.InboundPort, adminPort, sock, admin))
	expectBody(m, c, "app:8080", 200, "unix-app /p")
	expectBody(m, c, "app:8081", 200, "admin-app /p")
	requireSyncedNoNACK(t, m)
}
