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

// flushWait is longer than the access logger's flush interval
// (accesslog.FlushInterval, 1 s): a line a proxy wrote is in its file
// after it.
const flushWait = 2500 * time.Millisecond

// accessLogLines counts the lines of file carrying request id on the
// client side (outbound| cluster) and on the server side (inbound|).
func accessLogLines(file, id string) (outbound, inbound int) {
	data, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `"`+id+`"`) {
			continue
		}
		switch {
		case strings.Contains(line, " outbound|9080||ratings.default.svc.cluster.local "):
			outbound++
		case strings.Contains(line, " inbound|"):
			inbound++
		}
	}
	return outbound, inbound
}

// waitLines waits until file has want lines (outbound, inbound) for id.
func waitLines(t *testing.T, file, id string, out, in int) {
	t.Helper()
	err := testenv.Eventually(func() error {
		o, i := accessLogLines(file, id)
		if o != out || i != in {
			data, _ := os.ReadFile(file)
			return fmt.Errorf("%s: %s has %d outbound and %d inbound lines, want %d and %d:\n%s", id, filepath.Base(file), o, i, out, in, data)
		}
		return nil
	}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
}

// noLines checks, after the flush interval, that file has no line for id.
func noLines(t *testing.T, file, id string) {
	t.Helper()
	time.Sleep(flushWait)
	if o, i := accessLogLines(file, id); o != 0 || i != 0 {
		data, _ := os.ReadFile(file)
		t.Fatalf("%s: %d outbound and %d inbound lines, want none:\n%s", id, o, i, data)
	}
}

func telemetryYAML(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, ns, spec)
}

// TestTelemetryAccessLog: the Telemetry API's accessLogging through real
// proxies (client sidecar -> server sidecar -> echo), each step a live
// config change: logging for one workload only, Envoy's CEL filter
// response.code >= 400, CLIENT and SERVER modes to two providers, and a
// namespace disabling what the mesh-wide Telemetry turns on.
func TestTelemetryAccessLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	m := testenv.NewMesh(t, testenv.MeshOptions{MeshConfigYAML: fmt.Sprintf(`extensionProviders:
- name: file-a
  envoyFileAccessLog: {path: %s}
- name: file-b
  envoyFileAccessLog: {path: %s}
`, logA, logB)})
	service(t, m, "ratings", map[string]int{"http": 9080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error { return allServedBy(c, 1, "ratings:9080", "/", nil, "ratings", "v1") }, convergeTimeout)
	request := func(id, path string, status int) {
		t.Helper()
		if r := get(t, c, "ratings:9080", path, map[string]string{"X-Request-Id": id}); r.Status != status {
			t.Fatalf("%s: %s", id, r)
		}
	}
	apply := func(name, yaml string) {
		t.Helper()
		m.WriteConfig(name, yaml)
		m.WaitSynced(convergeTimeout)
	}

	// 1. One workload: only ratings' sidecar logs.
	apply("telemetry.yaml", telemetryYAML("default", "ratings-logs",
		"  selector: {matchLabels: {app: ratings}}\n  accessLogging: [{providers: [{name: file-a}]}]\n"))
	request("tel-workload", "/one", 200)
	waitLines(t, logA, "tel-workload", 0, 1)
	noLines(t, logB, "tel-workload")
	if o, _ := accessLogLines(logA, "tel-workload"); o != 0 {
		t.Fatalf("the client sidecar logged although the Telemetry selects ratings only")
	}

	// 2. Mesh-wide, filtered: only the 418 is logged, by both sidecars.
	m.RemoveConfig("telemetry.yaml")
	apply("telemetry-mesh.yaml", telemetryYAML("istio-system", "mesh-default",
		"  accessLogging: [{providers: [{name: file-a}], filter: {expression: 'response.code >= 400'}}]\n"))
	request("tel-ok", "/fine", 200)
	request("tel-teapot", "/status/418", 418)
	waitLines(t, logA, "tel-teapot", 1, 1)
	if o, i := accessLogLines(logA, "tel-ok"); o+i != 0 {
		t.Fatalf("the 200 was logged (%d, %d) through filter response.code >= 400", o, i)
	}

	// 3. CLIENT to file-a, SERVER to file-b.
	apply("telemetry-mesh.yaml", telemetryYAML("istio-system", "mesh-default", `  accessLogging:
  - {providers: [{name: file-a}], match: {mode: CLIENT}}
  - {providers: [{name: file-b}], match: {mode: SERVER}}
`))
	request("tel-modes", "/modes", 200)
	waitLines(t, logA, "tel-modes", 1, 0)
	waitLines(t, logB, "tel-modes", 0, 1)
	time.Sleep(flushWait)
	waitLines(t, logA, "tel-modes", 1, 0)
	waitLines(t, logB, "tel-modes", 0, 1)

	// 4. The namespace disables what the mesh turns on; removing that
	// Telemetry turns it back on.
	apply("telemetry-mesh.yaml", telemetryYAML("istio-system", "mesh-default", "  accessLogging: [{providers: [{name: file-a}]}]\n"))
	apply("telemetry-ns.yaml", telemetryYAML("default", "logs-off", "  accessLogging: [{disabled: true}]\n"))
	request("tel-ns-off", "/off", 200)
	noLines(t, logA, "tel-ns-off")
	m.RemoveConfig("telemetry-ns.yaml")
	m.WaitSynced(convergeTimeout)
	request("tel-ns-on", "/on", 200)
	waitLines(t, logA, "tel-ns-on", 1, 1)
	if err := m.CheckNoNACK(); err != nil {
		t.Fatal(err)
	}
}
