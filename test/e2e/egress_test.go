package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// externalTLSServer stands in for an external HTTPS service: a real TLS
// server with a certificate for name, answering with what it saw.
func externalTLSServer(t *testing.T, ca *testenv.CA, name string) (port int) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, name)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "external %s tls=%t sni=%s host=%s path=%s", name, r.TLS != nil, r.TLS.ServerName, r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// externalServiceEntry declares name as a MESH_EXTERNAL DNS service whose
// port 80 is served at name:port (the stand-in's TLS port).
func externalServiceEntry(name string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [%[1]s]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http-port, protocol: HTTP}]
  endpoints: [{address: %[1]s, ports: {http-port: %[2]d}}]
---
`, name, port)
}

// egressMesh starts a mesh whose proxies resolve name to loopback, where
// the stand-in external server listens, and trust the test CA by file.
func egressMesh(t *testing.T, name string, meshConfig string) (*testenv.Mesh, int, string) {
	ca := testenv.NewCA(t, "external-ca")
	port := externalTLSServer(t, ca, name)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: meshConfig, ProxyArgs: []string{"--hosts-file", hosts}})
	return m, port, caFile
}

// TestEgressTLSOrigination follows Istio's egress TLS origination task: the
// app sends plain HTTP to port 80 of an external host declared by a DNS
// ServiceEntry, and its sidecar opens TLS to the host's port 443 (here the
// stand-in's port), verifying it with the DestinationRule's CA.
func TestEgressTLSOrigination(t *testing.T) {
	const name = "secure.example.com"
	m, port, caFile := egressMesh(t, name, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
	egressConfig := externalServiceEntry(name, port) + tlsOriginationRule(name, caFile)
	m.WriteConfig("egress.yaml", egressConfig)
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	waitReachesExternal(m, c, name)
	t.Run("REGISTRY_ONLY blocks a host without a ServiceEntry", func(t *testing.T) {
		r, err := c.Get("other.example.com", "/", nil)
		if err != nil || r.Status != 502 {
			t.Errorf("want 502, got %v %v", r, err)
		}
	})
	t.Run("a wrong CA fails the handshake instead of sending plaintext", func(t *testing.T) {
		other := testenv.NewCA(t, "other")
		bad := filepath.Join(t.TempDir(), "bad.pem")
		os.WriteFile(bad, other.CertPEM, 0o644)
		m.WriteConfig("egress.yaml", strings.Replace(egressConfig, caFile, bad, 1))
		waitRefused(m, c, name, "certificate")
	})
}

// TestEgressGateway routes mesh traffic for an external host through an
// egress gateway, which originates TLS, as Istio's egress gateway task
// with TLS origination does.
func TestEgressGateway(t *testing.T) {
	const name = "secure.example.com"
	m, port, caFile := egressMesh(t, name, "")
	gwPort := testenv.FreePort()
	gw := m.AddGateway(testenv.GatewayOptions{Name: "istio-egressgateway", Labels: map[string]string{"istio": "egressgateway"}})
	m.WriteConfig("egress.yaml", externalServiceEntry(name, port)+fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: istio-egressgateway, namespace: istio-system}
spec: {address: 127.0.0.1, labels: {istio: egressgateway}, ports: {http: %[4]d}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %[4]d, name: http, protocol: HTTP}
    hosts: [%[1]s]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-egress, namespace: default}
spec:
  hosts: [%[1]s]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: %[4]d}]
    route: [{destination: {host: %[1]s, port: {number: 80}}}]
`, name, port, caFile, gwPort)+"---\n"+tlsOriginationRule(name, caFile))
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	waitReachesExternal(m, c, name)
	// The gateway, not the client, opened the TLS connection.
	gwStat := statValue(t, "http://"+gw.AdminAddress+"/stats", "cluster.outbound|80||"+name+".upstream_rq_total")
	clientStat := statValue(t, "http://"+c.AdminAddress+"/stats", "cluster.outbound|80||istio-egressgateway.istio-system.svc.cluster.local.upstream_rq_total")
	if gwStat == 0 || clientStat == 0 {
		t.Errorf("traffic did not pass the egress gateway: gateway sent %d to the external host, client sent %d to the gateway", gwStat, clientStat)
	}
	if direct := statValue(t, "http://"+c.AdminAddress+"/stats", "cluster.outbound|80||"+name+".upstream_rq_total"); direct != 0 {
		t.Errorf("the client sent %d requests straight to the external host", direct)
	}
}

// statValue reads one counter from a proxy's /stats (0 when absent).
func statValue(t *testing.T, url, name string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok && k == name {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	io.Copy(io.Discard, resp.Body)
	return 0
}

// TestEgressGatewayMeshMTLS: the sidecar reaches the egress gateway over
// mesh mTLS (DestinationRule ISTIO_MUTUAL; the Gateway server is
// ISTIO_MUTUAL), with certificates both proxies got from the control
// plane's CA; a client without a mesh certificate is refused.
func TestEgressGatewayMeshMTLS(t *testing.T) {
	const name = "secure.example.com"
	m, port, caFile := egressMesh(t, name, "")
	gwPort := testenv.FreePort()
	gw := m.AddGateway(testenv.GatewayOptions{Name: "istio-egressgateway", Labels: map[string]string{"istio": "egressgateway"},
		ServiceAccount: "istio-egressgateway-service-account"})
	egressConfig := externalServiceEntry(name, port) + fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: https, port: %[3]d}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: istio-egressgateway, namespace: istio-system}
spec: {address: 127.0.0.1, labels: {istio: egressgateway}, ports: {https: %[3]d}, serviceAccount: istio-egressgateway-service-account}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: %[3]d, name: https, protocol: HTTPS}
    hosts: [%[1]s]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-mtls, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: %[1]s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: via-egress, namespace: default}
spec:
  hosts: [%[1]s]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: %[3]d}}}]
  - match: [{gateways: [istio-egressgateway], port: %[3]d}]
    route: [{destination: {host: %[1]s, port: {number: 80}}}]
`, name, caFile, gwPort) + "---\n" + tlsOriginationRule(name, caFile)
	m.WriteConfig("egress.yaml", egressConfig)
	c := m.AddClient(testenv.ClientOptions{Name: "app"})
	waitReachesExternal(m, c, name)
	if n := statValue(t, "http://"+gw.AdminAddress+"/stats", "cluster.outbound|80||"+name+".upstream_rq_total"); n == 0 {
		t.Error("the request did not pass the egress gateway")
	}
	t.Run("the sidecar refuses a gateway with another identity", func(t *testing.T) {
		m.WriteConfig("egress.yaml", strings.Replace(egressConfig, "serviceAccount: istio-egressgateway-service-account", "serviceAccount: someone-else", 1))
		waitRefused(m, c, name, "sa/someone-else")
		m.WriteConfig("egress.yaml", egressConfig)
	})
	// A TLS client that trusts nothing in particular but has no mesh
	// certificate is refused by the ISTIO_MUTUAL server.
	conn, err := tls.Dial("tcp", gw.Address(gwPort), &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err == nil {
		// TLS 1.3 reports a missing client certificate on the first read.
		conn.Write([]byte("GET / HTTP/1.1\r\nHost: " + name + "\r\n\r\n"))
		_, err = bufio.NewReader(conn).ReadString('\n')
		conn.Close()
	}
	if err == nil {
		t.Error("the ISTIO_MUTUAL server served a client without a mesh certificate")
	}
	requireSyncedNoNACK(t, m)
}

// tlsOriginationRule makes the mesh originate TLS to name's port 80,
// verifying it with the test CA, as Istio's egress TLS origination task.
func tlsOriginationRule(name, caFile string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: default}
spec:
  host: %[1]s
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE, caCertificates: %[2]s}
`, name, caFile)
}

// waitReachesExternal waits until the client's requests for name reach the
// stand-in over TLS, with name as SNI and Host.
func waitReachesExternal(m *testenv.Mesh, c *testenv.Client, name string) {
	want := "external " + name + " tls=true sni=" + name + " host=" + name
	m.WaitConverged(func() error {
		r, err := c.Get(name, "/get", nil)
		if err != nil {
			return err
		}
		if r.Status != 200 || !strings.HasPrefix(string(r.Body), want) {
			return fmt.Errorf("want %q, got %s", want, r)
		}
		return nil
	}, convergeTimeout)
}

// waitRefused waits until the client's requests for name get the proxy's
// 503 whose reason names why (a certificate problem, an identity).
func waitRefused(m *testenv.Mesh, c *testenv.Client, name, why string) {
	m.WaitConverged(func() error {
		r, err := c.Get(name, "/get", nil)
		if err != nil {
			return err
		}
		if r.Status != 503 || !strings.Contains(string(r.Body), why) {
			return fmt.Errorf("want 503 naming %q, got %s", why, r)
		}
		return nil
	}, convergeTimeout)
}
