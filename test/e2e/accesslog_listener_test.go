package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestListenerAccessLogNR: with MeshConfig accessLogFile, a connection no
// filter chain takes is logged by the listener's access log (Istio's
// NR-filtered listener log): plaintext to a STRICT sidecar is refused at
// the connection and logged with NR and filter_chain_not_found, its
// addresses filled; served connections add no such line.
func TestListenerAccessLogNR(t *testing.T) {
	t.Parallel()
	logFile := filepath.Join(t.TempDir(), "access.log")
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: fmt.Sprintf("accessLogFile: %s\n", logFile)})
	m.WriteConfig("db.yaml", testenv.ServiceYAML("db", "default", map[string]string{"app": "db"}, map[string]int{"http": 8080}))
	w := m.AddWorkload(testenv.WorkloadOptions{Service: "db"})
	c := m.AddClient(testenv.ClientOptions{Name: "client"})
	m.WaitConverged(func() error { return meshCallWithIdentity(c) }, convergeTimeout)
	if r, err := plaintextGet(w.InboundAddress); err != nil || r.StatusCode != 200 {
		t.Fatalf("PERMISSIVE: plaintext to %s: %v %v", w.InboundAddress, r, err)
	}
	nrLines := func() []string {
		data, _ := os.ReadFile(logFile)
		var out []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "filter_chain_not_found") {
				out = append(out, line)
			}
		}
		return out
	}
	time.Sleep(flushWait)
	if got := nrLines(); len(got) != 0 {
		t.Fatalf("served connections logged as NR: %v", got)
	}

	m.WriteConfig("strict.yaml", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
`)
	m.WaitConverged(func() error {
		if r, err := plaintextGet(w.InboundAddress); err == nil {
			return fmt.Errorf("STRICT: plaintext still answered %s", r.Status)
		}
		return nil
	}, convergeTimeout)
	var lines []string
	err := testenv.Eventually(func() error {
		if lines = nrLines(); len(lines) == 0 {
			return fmt.Errorf("no NR line for the refused plaintext connection")
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Istio's text format: no request, code 0, NR, the details, and the
	// connection's local (the inbound listener) address.
	for _, line := range lines {
		if !strings.Contains(line, `"- - -" 0 NR filter_chain_not_found `) || !strings.Contains(line, " "+w.InboundAddress+" ") {
			t.Errorf("listener log line: %s", line)
		}
	}
	if err := meshCallWithIdentity(c); err != nil {
		t.Fatalf("STRICT: mesh client: %v", err)
	}
	// The sidecar's /stats counts the lines its access log file took.
	resp, err := http.Get("http://" + w.AdminAddress + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if name, v, _ := strings.Cut(line, ": "); name == "filesystem.write_buffered" && v != "0" {
			return
		}
	}
	t.Errorf("/stats has no filesystem.write_buffered above 0:\n%s", body)
}
