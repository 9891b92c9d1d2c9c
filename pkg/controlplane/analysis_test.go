package controlplane

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/analysis"
)

const analysisMesh = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

func splitVS(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: %d}
    - {destination: {host: reviews, subset: v2}, weight: %d}
`, w1, w2)
}

// analysis GETs /debug/analysis.
func (r *running) analysis(t *testing.T) AnalysisStatus {
	t.Helper()
	resp, err := http.Get("http://" + r.http + "/debug/analysis")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st AnalysisStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A config edit is pushed and then analyzed: the analyzers' messages show
// at /debug/status and /debug/analysis per resource, and go away when the
// config is fixed. Analyzers needing pods do not run (the subsets have
// WorkloadEntries, no pods: IST0173 would be wrong here).
func TestContinuousAnalysis(t *testing.T) {
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "mesh.yaml", analysisMesh)
	r.write(t, "split.yaml", splitVS(90, 20))
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})

	const res = "VirtualService default/split"
	waitUntil(t, "the startup config to be analyzed", func() error {
		if st := r.status(t); len(st.Analysis.ByResource[res]) == 0 {
			return fmt.Errorf("analysis in /debug/status: %+v", st.Analysis)
		}
		return nil
	})
	st := r.status(t)
	if len(st.Analysis.ByResource) != 1 || len(st.Analysis.ByResource[res]) != 1 {
		t.Fatalf("want one message, on %s: %+v", res, st.Analysis.ByResource)
	}
	m := st.Analysis.ByResource[res][0]
	if m.Code != "SLU0003" || m.Level != "Warning" || !strings.Contains(m.Message, "add up to 110") || !strings.HasSuffix(m.Origin, "split.yaml") {
		t.Errorf("message: %+v", m)
	}
	if n := len(r.log.lines("level=WARN", "config analysis", "code=SLU0003", `resource="VirtualService default/split"`)); n != 1 {
		t.Errorf("%d WARN lines for the new message, want 1:\n%s", n, strings.Join(r.log.lines("config analysis"), "\n"))
	}
	a := r.analysis(t)
	if a.Error != "" || len(a.Messages) != 1 || a.Messages[0] != m || a.PushVersion == "" || a.ConfigVersion != st.Analysis.ConfigVersion {
		t.Errorf("/debug/analysis: %+v", a)
	}
	for _, name := range a.Analyzers {
		if name == "destinationrule.SubsetSelectPodAnalyzer" {
			t.Errorf("an analyzer needing pods ran in the control plane")
		}
	}
	if len(a.Analyzers) < 20 {
		t.Errorf("only %d analyzers ran", len(a.Analyzers))
	}

	// The fix is pushed and analyzed: the message clears.
	before := a.ConfigVersion
	r.write(t, "split.yaml", splitVS(80, 20))
	waitUntil(t, "the fix to be analyzed", func() error {
		a := r.analysis(t)
		if a.ConfigVersion == before || len(a.Messages) != 0 {
			return fmt.Errorf("config version %d, messages %+v", a.ConfigVersion, a.Messages)
		}
		return nil
	})
	if st := r.status(t); len(st.Analysis.ByResource) != 0 || st.LastPush.Version == "1" {
		t.Errorf("after the fix: analysis %+v, last push %s", st.Analysis, st.LastPush.Version)
	}
}

// The analysis worker never blocks its caller (the push): a slow run is
// reported as late at once, and configs arriving meanwhile are merged so
// only the newest is analyzed next.
func TestAnalysisWorkerNeverBlocks(t *testing.T) {
	a := newAnalyzer(nil, slog.New(slog.DiscardHandler))
	a.timeout = 50 * time.Millisecond
	release := make(chan struct{})
	var mu sync.Mutex
	var ran []uint64
	a.analyze = func(job analysisJob, _ *meshv1alpha1.MeshConfig) AnalysisStatus {
		mu.Lock()
		ran = append(ran, job.configVersion)
		mu.Unlock()
		if job.configVersion == 1 {
			<-release
		}
		return AnalysisStatus{ConfigVersion: job.configVersion, Messages: []analysis.Finding{}}
	}
	a.schedule(analysisJob{configVersion: 1})
	waitUntil(t, "config 1 to be taken up", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(ran) == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	start := time.Now()
	a.schedule(analysisJob{configVersion: 2})
	a.schedule(analysisJob{configVersion: 3})
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Errorf("schedule blocked for %s", d)
	}
	waitUntil(t, "the slow run to be reported", func() error {
		if st := a.status(); !strings.Contains(st.Error, "config version 1 still running after 50ms") {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	close(release)
	waitUntil(t, "the newest config to be analyzed", func() error {
		if st := a.status(); st.ConfigVersion != 3 || st.Error != "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(ran) != "[1 3]" {
		t.Errorf("analyzed config versions %v, want [1 3] (2 superseded by 3)", ran)
	}
}
