package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestSniffedInboundPort: a workload port no Service declares (Istio's
// tcp-echo 9002) is sniffed by its sidecar: a TCP line is proxied to the
// line echo by the TCP chain and an HTTP request to an HTTP app is served
// by the HTTP chain (the http_inspector counted it). Under an ALLOW policy
// naming only the declared port, the TCP line on the undeclared port is
// closed at once by the TCP chain's network RBAC, while the declared port
// still echoes.
func TestSniffedInboundPort(t *testing.T) {
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("tcp-echo.yaml", testenv.ServiceYAML("tcp-echo", "default", map[string]string{"app": "tcp-echo"}, map[string]int{"tcp": 9000}))
	w := m.AddWorkload(testenv.WorkloadOptions{Service: "tcp-echo", PortName: "tcp", TCPPrefix: "hello",
		Ports: []testenv.WorkloadPort{{TCPPrefix: "hello"}, {}}})
	undeclared, httpPort := w.Ports[0].InboundAddress, w.Ports[1].InboundAddress
	m.WaitConverged(func() error {
		word, err := tcpLine(undeclared, "port 9002")
		if err == nil && word != "hello" {
			err = fmt.Errorf("answer from %q", word)
		}
		return err
	}, convergeTimeout)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + httpPort + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTP to the undeclared port: %v %v", resp, err)
	}
	resp.Body.Close()
	stats := sidecarStats(t, w.AdminAddress)
	want := fmt.Sprintf("listener.virtualInbound_%d.http_inspector.http11_found: 1\n", w.Ports[1].InboundPort)
	if !strings.Contains(stats, want) {
		t.Errorf("sidecar /stats lacks %q", want)
	}

	m.WriteConfig("tcp-policy.yaml", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-policy, namespace: default}
spec:
  selector: {matchLabels: {app: tcp-echo}}
  action: ALLOW
  rules: [{to: [{operation: {ports: ["%d"]}}]}]
`, w.InboundPort))
	m.WaitConverged(func() error {
		if word, err := tcpLine(undeclared, "port 9002"); err == nil {
			return fmt.Errorf("undeclared port still answered %q", word)
		}
		return nil
	}, convergeTimeout)
	conn, err := net.Dial("tcp", undeclared)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetDeadline(start.Add(10 * time.Second))
	io.WriteString(conn, "port 9002\n")
	if n, err := conn.Read(make([]byte, 64)); err == nil || n > 0 || time.Since(start) > time.Second {
		t.Errorf("denied line: read %d, %v after %v; want closed at once", n, err, time.Since(start))
	}
	if word, err := tcpLine(w.InboundAddress, "port 9000"); err != nil || word != "hello" {
		t.Errorf("declared port under the ALLOW policy: %q %v", word, err)
	}
	if stats := sidecarStats(t, w.AdminAddress); !strings.Contains(stats, "tcp.rbac.denied: ") {
		t.Errorf("sidecar /stats has no network RBAC denial")
	}
	requireSyncedNoNACK(t, m)
}

func sidecarStats(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
