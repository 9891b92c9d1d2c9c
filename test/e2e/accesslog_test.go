package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestAccessLogFile: MeshConfig accessLogFile turns on Istio's default
// text access log in every proxy; the client sidecar logs its request
// (upstream cluster and host) and the server sidecar its inbound side,
// and a proxy-made 404 is logged with NR and its reason.
func TestAccessLogFile(t *testing.T) {
	t.Parallel()
	logFile := filepath.Join(t.TempDir(), "access.log")
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: fmt.Sprintf("accessLogFile: %s\n", logFile)})
	m.WriteConfig("vs-ratings.yaml", ratingsOnlyVS)
	service(t, m, "ratings", map[string]int{"http": 9080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error { return allServedBy(c, 1, "ratings:9080", "/only", nil, "ratings", "v1") }, convergeTimeout)

	r := get(t, c, "ratings:9080", "/only/logged", map[string]string{"X-Request-Id": "al-e2e-1", "User-Agent": "al-agent"})
	if r.Status != 200 {
		t.Fatalf("request: %s", r)
	}
	if r := get(t, c, "ratings:9080", "/none", map[string]string{"X-Request-Id": "al-e2e-2"}); r.Status != 404 {
		t.Fatalf("want 404, got %s", r)
	}
	var outbound, inbound, noRoute string
	err := testenv.Eventually(func() error {
		data, _ := os.ReadFile(logFile)
		outbound, inbound, noRoute = "", "", ""
		for _, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.Contains(line, `"al-e2e-1"`) && strings.Contains(line, " outbound|9080||ratings.default.svc.cluster.local "):
				outbound = line
			case strings.Contains(line, `"al-e2e-1"`) && strings.Contains(line, " inbound|"):
				inbound = line
			case strings.Contains(line, `"al-e2e-2"`):
				noRoute = line
			}
		}
		if outbound == "" || inbound == "" || noRoute == "" {
			return fmt.Errorf("lines missing from the access log:\n%s", data)
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outbound, `"GET /only/logged HTTP/1.1" 200 - via_upstream - "-" 0 `) || !strings.Contains(outbound, `"al-agent"`) ||
		!strings.Contains(outbound, `"ratings:9080"`) {
		t.Errorf("client sidecar line: %s", outbound)
	}
	if !strings.Contains(inbound, `"GET /only/logged HTTP/1.1" 200 - via_upstream`) {
		t.Errorf("server sidecar line: %s", inbound)
	}
	if !strings.Contains(noRoute, `"GET /none HTTP/1.1" 404 NR no_route_matched - "-" 0 0 `) {
		t.Errorf("no route line: %s", noRoute)
	}
}
