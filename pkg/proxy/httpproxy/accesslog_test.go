package httpproxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
)

// readLog flushes the access logs and returns the file's lines.
func readLog(t *testing.T, path string, want int) []string {
	t.Helper()
	accesslog.FlushAll()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != want {
		t.Fatalf("access log has %d lines, want %d:\n%s", len(lines), want, data)
	}
	return lines
}

// accessLogBackend answers 201 with 5 body bytes after reading the request.
func accessLogBackend(_ int64, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "5")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, "hello")
}

// The sidecar's connection manager with MeshConfig accessLogFile and
// Istio's default text format: an upstream answer and two answers the
// proxy makes itself (no route, no healthy upstream), one line each.
func TestAccessLogText(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", accessLogBackend)
	path := filepath.Join(t.TempDir(), "access.log")
	mc := &meshv1alpha1.MeshConfig{AccessLogFile: path}
	m := newMeshConfigured(t, mc, service("web", web)+service("empty")+vs(`  - match: [{uri: {prefix: /web}}]
    route: [{destination: {host: web}}]
`)+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: empty}
spec:
  hosts: [empty]
  http: [{route: [{destination: {host: empty}}]}]
`, nil)
	a := m.do("POST", "web:8080", "/web/x?q=1", []byte("0123456789"), map[string]string{"User-Agent": "tester", "X-Request-Id": "rid-1"})
	if a.status != 201 {
		t.Fatalf("status %d", a.status)
	}
	m.do("GET", "web:8080", "/nowhere", nil, map[string]string{"User-Agent": "tester"})
	m.get("empty:8080", "/")
	lines := readLog(t, path, 3)
	// [START] "METHOD PATH PROTO" CODE FLAGS DETAILS TERM "UTFR" RX TX DUR UST "XFF" "UA" "RID" "AUTH" "UPHOST" CLUSTER UPLOCAL DLOCAL DREMOTE SNI ROUTE
	re := regexp.MustCompile(`^\[(\S+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\S+) (\S+) "(.*)" (\d+) (\d+) (\d+) (\S+) "(.*)" "(.*)" "(.*)" "(.*)" "(.*)" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$`)
	parse := func(line string) []string {
		g := re.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("line does not have Istio's text format: %q", line)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", g[1]); err != nil {
			t.Errorf("start time %q: %v", g[1], err)
		}
		return g
	}
	g := parse(lines[0])
	want := map[int]string{2: "POST", 3: "/web/x?q=1", 4: "HTTP/1.1", 5: "201", 6: "-", 7: "via_upstream", 8: "-", 9: "-",
		10: "10", 11: "5", 15: "tester", 16: "rid-1", 17: "web:8080", 18: web.srv.Listener.Addr().String(), 19: webCluster}
	for i, w := range want {
		if g[i] != w {
			t.Errorf("upstream answer: field %d = %q, want %q\n%s", i, g[i], w, lines[0])
		}
	}
	if d, _ := strconv.Atoi(g[12]); d < 0 || d > 5000 {
		t.Errorf("duration %s ms not plausible", g[12])
	}
	if _, err := strconv.Atoi(g[13]); err != nil {
		t.Errorf("upstream service time %q is not a number", g[13])
	}
	if !strings.HasPrefix(g[20], "127.0.0.1:") || !strings.HasPrefix(g[21], "127.0.0.1:") || !strings.HasPrefix(g[22], "127.0.0.1:") {
		t.Errorf("upstream local, downstream local and remote addresses %q %q %q", g[20], g[21], g[22])
	}
	if g[24] == "-" {
		t.Errorf("route name missing: %s", lines[0])
	}

	g = parse(lines[1])
	if g[5] != "404" || g[6] != "NR" || g[7] != "no_route_matched" || g[18] != "-" || g[19] != "-" || g[11] != "0" {
		t.Errorf("no route: %s", lines[1])
	}
	// A request without an x-request-id gets one from the connection
	// manager before anything logs it (Envoy's generate_request_id).
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(g[16]) {
		t.Errorf("generated request id %q is not a UUID v4: %s", g[16], lines[1])
	}
	g = parse(lines[2])
	if g[5] != "503" || g[6] != "UH" || !strings.HasPrefix(g[7], "no_healthy_upstream:_cluster_outbound|8080||empty.default") {
		t.Errorf("no healthy upstream: %s", lines[2])
	}
	if n, _ := strconv.Atoi(g[11]); n != len("no healthy upstream: cluster outbound|8080||empty.default.svc.cluster.local has no endpoints\n") {
		t.Errorf("bytes sent %s for the proxy's one-line answer", g[11])
	}
}

// Istio's JSON format: typed numbers, null for absent values.
func TestAccessLogJSON(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", accessLogBackend)
	path := filepath.Join(t.TempDir(), "access.json")
	mc := &meshv1alpha1.MeshConfig{AccessLogFile: path, AccessLogEncoding: meshv1alpha1.MeshConfig_JSON}
	m := newMeshConfigured(t, mc, service("web", web)+vs("  - match: [{uri: {exact: /p}}]\n    route: [{destination: {host: web}}]\n"), nil)
	m.do("PUT", "web:8080", "/p", []byte("abc"), map[string]string{"User-Agent": `a "quoted" agent`})
	m.get("web:8080", "/other")
	lines := readLog(t, path, 2)
	var up, nr map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &up); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &nr); err != nil {
		t.Fatalf("%v: %s", err, lines[1])
	}
	if len(up) != 24 {
		t.Errorf("%d keys, Istio's format has 24: %s", len(up), lines[0])
	}
	want := map[string]any{"method": "PUT", "path": "/p", "protocol": "HTTP/1.1", "response_code": 201.0,
		"response_flags": "-", "response_code_details": "via_upstream", "bytes_received": 3.0, "bytes_sent": 5.0,
		"user_agent": `a "quoted" agent`, "authority": "web:8080", "upstream_host": web.srv.Listener.Addr().String(),
		"upstream_cluster": webCluster, "x_forwarded_for": nil, "requested_server_name": nil}
	for k, v := range want {
		if up[k] != v {
			t.Errorf("%s = %#v, want %#v", k, up[k], v)
		}
	}
	if a, _ := up["upstream_local_address"].(string); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("upstream_local_address %v", up["upstream_local_address"])
	}
	if d, ok := up["duration"].(float64); !ok || d < 0 || d > 5000 {
		t.Errorf("duration %v", up["duration"])
	}
	if nr["response_code"] != 404.0 || nr["response_flags"] != "NR" || nr["upstream_host"] != nil {
		t.Errorf("no route line: %s", lines[1])
	}
}

// BenchmarkAccessLog is one request through the request path (handler to
// loopback upstream and back) with Istio's default text or JSON access
// log to a file, against none, in the same run.
func BenchmarkAccessLog(b *testing.B) {
	web := newBackend(b, "web", ok)
	yaml := service("web", web) + vs("  - route: [{destination: {host: web}}]\n")
	dir := b.TempDir()
	for _, bc := range []struct {
		name string
		mc   *meshv1alpha1.MeshConfig
	}{
		{"off", meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{})},
		{"text", &meshv1alpha1.MeshConfig{AccessLogFile: dir + "/text.log"}},
		{"json", &meshv1alpha1.MeshConfig{AccessLogFile: dir + "/json.log", AccessLogEncoding: meshv1alpha1.MeshConfig_JSON}},
	} {
		m := newMeshConfigured(b, bc.mc, yaml, nil)
		b.Run(bc.name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req := httptest.NewRequest("GET", "http://web:8080/bench", nil)
			req.Header.Set("User-Agent", "bench")
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				m.handler.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}
