package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// EnvMeasureRSS set to 1 runs TestSidecarRSS, which starts a control
// plane and a real sidecar per mesh size (about a minute).
const EnvMeasureRSS = "SLUICE_MEASURE_RSS"

// EnvHeapDir names a folder to save each measured sidecar's heap profile
// in (go tool pprof -sample_index=inuse_space).
const EnvHeapDir = "SLUICE_HEAP_DIR"

// EnvRSSProtocol, when set, is the measured sidecars' --xds-protocol.
const EnvRSSProtocol = "SLUICE_RSS_XDS_PROTOCOL"

// rssMesh is one measured mesh: services in namespaces ns0..ns<namespaces-1>
// (one endpoint each), the sidecar in ns0, optionally under a Sidecar
// scope of its own namespace.
type rssMesh struct {
	name       string
	services   int
	namespaces int
	scoped     bool
}

// TestSidecarRSS measures a sidecar's resident memory as the mesh grows,
// with and without a Sidecar scope (egress hosts ./*). A scoped sidecar
// in a mesh of 1000 services in 10 namespaces sees the 100 of its own
// namespace: its RSS must stay within 10% of a sidecar in a mesh of just
// those 100 services. Run with SLUICE_MEASURE_RSS=1 -v to see the figures.
func TestSidecarRSS(t *testing.T) {
	if os.Getenv(EnvMeasureRSS) != "1" {
		t.Skip("set " + EnvMeasureRSS + "=1 to measure")
	}
	rss := map[string]memResult{}
	for _, m := range []rssMesh{
		{name: "10", services: 10, namespaces: 1},
		{name: "100 in ns0", services: 100, namespaces: 1},
		{name: "1000 scoped", services: 1000, namespaces: 10, scoped: true},
		{name: "1000 unscoped", services: 1000, namespaces: 10},
	} {
		t.Run(strings.ReplaceAll(m.name, " ", "_"), func(t *testing.T) {
			rss[m.name] = measureSidecarRSS(t, m)
		})
	}
	for _, n := range []string{"10", "100 in ns0", "1000 scoped", "1000 unscoped"} {
		t.Logf("%-14s VmRSS %6.1f MiB  RssAnon %6.1f MiB", n, float64(rss[n].rss)/1024, float64(rss[n].anon)/1024)
	}
	if base, scoped := rss["100 in ns0"].rss, rss["1000 scoped"].rss; base > 0 && float64(scoped) > 1.1*float64(base) {
		t.Errorf("a scoped sidecar in a 1000-service mesh takes %d KiB, over 10%% more than in a mesh of its namespace's 100 services (%d KiB)", scoped, base)
	}
}

// memResult is a sidecar's VmRSS and RssAnon in KiB.
type memResult struct{ rss, anon int }

func measureSidecarRSS(t *testing.T, m rssMesh) memResult {
	var proxyArgs []string
	if p := os.Getenv(EnvRSSProtocol); p != "" {
		proxyArgs = []string{"--xds-protocol", p}
	}
	mesh := testenv.NewMesh(t, testenv.MeshOptions{ProxyArgs: proxyArgs})
	var b strings.Builder
	for i := range m.services {
		ns := fmt.Sprintf("ns%d", i%m.namespaces)
		name := fmt.Sprintf("svc%04d", i)
		b.WriteString(testenv.ServiceYAML(name, ns, map[string]string{"app": name}, map[string]int{"http": 80}))
		b.WriteString("---\n")
		b.WriteString(testenv.MustYAML(map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{"address": fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256),
				"labels": map[string]string{"app": name}, "ports": map[string]int{"http": 8080}},
		}))
		b.WriteString("---\n")
	}
	b.WriteString(testenv.ServiceYAML("web", "ns0", map[string]string{"app": "web"}, map[string]int{"http": 80}))
	if m.scoped {
		b.WriteString("---\n" + testenv.MustYAML(map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
			"metadata": map[string]any{"name": "default", "namespace": "ns0"},
			"spec":     map[string]any{"egress": []any{map[string]any{"hosts": []string{"./*"}}}},
		}))
	}
	mesh.WriteConfig("mesh.yaml", b.String())
	w := mesh.AddWorkload(testenv.WorkloadOptions{Service: "web", Namespace: "ns0"})
	want := m.services/m.namespaces + 1 // the namespace's services and web
	if !m.scoped {
		want = m.services + 1
	}
	var clusters int
	deadline := time.Now().Add(60 * time.Second)
	for {
		clusters = outboundClusters(t, w.AdminAddress)
		if clusters >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if clusters < want {
		t.Fatalf("the sidecar has %d outbound clusters, want %d", clusters, want)
	}
	time.Sleep(3 * time.Second) // let the runtime settle after the last compile
	kib, anon := memStatus(t, w.Sidecar.PID())
	if dir := os.Getenv(EnvHeapDir); dir != "" {
		saveHeap(t, w.AdminAddress, filepath.Join(dir, "heap-"+strings.ReplaceAll(m.name, " ", "_")+".pprof"))
	}
	t.Logf("%s: %d outbound clusters, RSS %d KiB, RssAnon %d KiB", m.name, clusters, kib, anon)
	return memResult{rss: kib, anon: anon}
}

// saveHeap writes the sidecar's heap profile (admin /debug/pprof/heap).
func saveHeap(t *testing.T, admin, path string) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// outboundClusters counts the sidecar's clusters named outbound|... in
// its /clusters (lighter than /config_dump, which would marshal every
// resource to JSON inside the process measured).
func outboundClusters(t *testing.T, admin string) int {
	resp, err := http.Get("http://" + admin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "outbound|") && strings.HasSuffix(line, "::added_via_api::true") {
			n++
		}
	}
	return n
}

// memStatus is a process's resident memory in KiB (/proc/PID/status):
// VmRSS, and RssAnon, its part not backed by files (the binary's pages
// are RssFile).
func memStatus(t *testing.T, pid int) (rss, anon int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "VmRSS:" && f[0] != "RssAnon:") {
			continue
		}
		kib, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		if f[0] == "VmRSS:" {
			rss = kib
		} else {
			anon = kib
		}
	}
	if rss == 0 {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, anon
}
