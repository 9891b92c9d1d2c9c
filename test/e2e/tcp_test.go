package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// tcpLine sends one line over a new connection to addr and returns the
// first word of the answer (tcp-echo answers "<prefix> <line>").
func tcpLine(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(answer, line+"\n") {
		return "", fmt.Errorf("echo answered %q to %q", answer, line)
	}
	word, _, _ := strings.Cut(answer, " ")
	return word, nil
}

const tcpEchoConfig = `apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  selector: {app: tcp-echo}
  ports: [{name: tcp, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo, namespace: default}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

// TestTCPRouting: a Gateway TCP server splits connections 80/20 between
// subsets by a VirtualService tcp route, and a sidecar's outbound TCP
// listener follows a mesh tcp route; the backends' sidecars proxy TCP in.
func TestTCPRouting(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("tcp-echo.yaml", tcpEchoConfig)
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v1", PortName: "tcp", TCPPrefix: "one"})
	m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", Version: "v2", PortName: "tcp", TCPPrefix: "two"})
	gwPort := testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[1]d, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo-gateway, namespace: default}
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - match: [{port: %[1]d}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo-mesh, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - route: [{destination: {host: tcp-echo, subset: v2}}]
`, gwPort))
	gw := m.AddGateway(testenv.GatewayOptions{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}})

	t.Run("gateway weighted split", func(t *testing.T) {
		m.WaitConverged(func() error { _, err := tcpLine(gw.Address(gwPort), "probe"); return err }, convergeTimeout)
		counts := map[string]int{}
		const n = 400
		for i := 0; i < n; i++ {
			word, err := tcpLine(gw.Address(gwPort), fmt.Sprintf("line %d", i))
			if err != nil {
				t.Fatal(err)
			}
			counts[word]++
		}
		// binomial sd at n=400, p=0.2 is 0.02; allow 4 sd.
		if f := float64(counts["two"]) / n; f < 0.12 || f > 0.28 || counts["one"]+counts["two"] != n {
			t.Errorf("split %v: want two=20%%±8%%", counts)
		}
	})

	t.Run("sidecar outbound TCP listener", func(t *testing.T) {
		ip := "127.0.77.1"
		c := m.AddClient(testenv.ClientOptions{Name: "tcp-client", OutboundTCPIP: ip})
		_ = c
		addr := ip + ":9000"
		m.WaitConverged(func() error { _, err := tcpLine(addr, "probe"); return err }, convergeTimeout)
		for i := 0; i < 20; i++ {
			word, err := tcpLine(addr, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if word != "two" {
				t.Fatalf("mesh tcp route sends every connection to v2; got %q", word)
			}
		}
	})
	t.Run("maxConnections refuses the connection beyond the limit", func(t *testing.T) {
		m.WriteConfig("tcp-echo.yaml", strings.Replace(tcpEchoConfig, "  host: tcp-echo\n",
			"  host: tcp-echo\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}\n", 1))
		addr := "127.0.77.1:9000"
		m.WaitConverged(func() error {
			held, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			defer held.Close()
			r := bufio.NewReader(held)
			held.Write([]byte("first\n"))
			if _, err := r.ReadString('\n'); err != nil {
				return fmt.Errorf("the first connection must be served: %v", err)
			}
			if word, err := tcpLine(addr, "second"); err == nil {
				return fmt.Errorf("a second connection was served (%q) while the first is open", word)
			}
			return nil
		}, convergeTimeout)
		// Once the first is gone the slot is free again.
		m.WaitConverged(func() error { _, err := tcpLine(addr, "after"); return err }, convergeTimeout)
	})
	requireSyncedNoNACK(t, m)
}

// TestTLSPassthrough: a Gateway TLS server in PASSTHROUGH mode routes by
// SNI to backends that terminate TLS themselves; the router never sees the
// plaintext.
func TestTLSPassthrough(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	ca := testenv.NewCA(t, "backend-ca")
	for _, name := range []string{"alpha", "beta"} {
		port := externalTLSServer(t, ca, name+".example.com")
		m.WriteConfig("svc-"+name+".yaml", testenv.ServiceYAML(name, "default", map[string]string{"app": name}, map[string]int{"tls": 443}))
		m.AddWorkload(testenv.WorkloadOptions{Service: name, PortName: "tls", AppAddress: "127.0.0.1:" + strconv.Itoa(port)})
	}
	gwPort := testenv.FreePort()
	m.WriteConfig("gateway.yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: passthrough, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[1]d, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough, namespace: default}
spec:
  hosts: ["*.example.com"]
  gateways: [passthrough]
  tls:
  - match: [{sniHosts: [alpha.example.com]}]
    route: [{destination: {host: alpha, port: {number: 443}}}]
  - match: [{sniHosts: [beta.example.com]}]
    route: [{destination: {host: beta, port: {number: 443}}}]
`, gwPort))
	gw := m.AddGateway(testenv.GatewayOptions{Name: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"}})
	get := func(sni string) (string, error) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: ca.Pool}}}
		resp, err := hc.Get("https://" + gw.Address(gwPort) + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	m.WaitConverged(func() error { _, err := get("alpha.example.com"); return err }, convergeTimeout)
	for _, name := range []string{"alpha", "beta"} {
		body, err := get(name + ".example.com")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.HasPrefix(body, "external "+name+".example.com tls=true sni="+name+".example.com") {
			t.Errorf("SNI %s.example.com reached %q", name, body)
		}
	}
	if _, err := get("gamma.example.com"); err == nil {
		t.Error("an SNI no tls route names must not be served")
	}
	requireSyncedNoNACK(t, m)
}
