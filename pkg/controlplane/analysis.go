package controlplane

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/analysis"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/kubesource"
	"github.com/sluice-mesh/sluice/pkg/kube/analysisstatus"
)

// Continuous analysis (issue 13, point 3): after each push of a config
// change, the analyzers of pkg/analysis run over the config just pushed,
// in a goroutine of their own. A push never waits for them and never
// fails because of them: what they find is advice, shown at
// /debug/status (analysis), /debug/analysis and in `sluice status`.

// analysisTimeout bounds how long status waits for one analysis: past it
// the result is reported as late; a newer config waits until the late
// run ends, so analysis uses at most one core.
const analysisTimeout = 10 * time.Second

// AnalysisStatus is the result of the newest finished analysis, served
// at /debug/analysis.
type AnalysisStatus struct {
	// ConfigVersion is the config snapshot analyzed; PushVersion the push
	// made from it.
	ConfigVersion uint64    `json:"config_version"`
	PushVersion   string    `json:"push_version"`
	Time          time.Time `json:"time"`
	Duration      int64     `json:"duration_ns"`
	// Analyzers are the analyzers run: those that need Kubernetes
	// workload objects (Pods, Deployments) are not, as the config folder
	// holds none.
	Analyzers []string `json:"analyzers"`
	// Error says why the newest config was not analyzed (yet).
	Error    string             `json:"error,omitempty"`
	Messages []analysis.Finding `json:"messages"`
	// ByResource groups Messages by resource ("Kind ns/name").
	ByResource map[string][]analysis.Finding `json:"by_resource"`
	// cluster are the messages about Istio objects read from the cluster,
	// for their status.validationMessages (validationstatus.go).
	cluster map[analysisstatus.Ref][]analysisstatus.Message
	// clusterAll are all the Istio objects read from the cluster.
	clusterAll []analysisstatus.Ref
}

// analysisJob is one config to analyze.
type analysisJob struct {
	configVersion uint64
	pushVersion   string
	resources     []*config.Resource
	// mesh is the push's MeshConfig (the cluster's may change); nil: the
	// analyzer's own.
	mesh *meshv1alpha1.MeshConfig
}

// analyzer runs analysis jobs one at a time, newest first: a job that
// arrives while one runs replaces any job still waiting.
type analyzer struct {
	mesh    *meshv1alpha1.MeshConfig
	log     *slog.Logger
	timeout time.Duration
	// analyze is analyze; tests slow it down.
	analyze func(analysisJob, *meshv1alpha1.MeshConfig) AnalysisStatus
	// onDone, when set, is told of each finished analysis.
	onDone func()

	mu      sync.Mutex
	pending *analysisJob
	running bool
	last    AnalysisStatus
}

func newAnalyzer(mesh *meshv1alpha1.MeshConfig, log *slog.Logger) *analyzer {
	return &analyzer{mesh: mesh, log: log, timeout: analysisTimeout, analyze: analyze,
		last: AnalysisStatus{Messages: []analysis.Finding{}, ByResource: map[string][]analysis.Finding{}, Error: "not analyzed yet"}}
}

// schedule queues job and starts a worker if none runs. It never blocks.
func (a *analyzer) schedule(job analysisJob) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = &job
	if !a.running {
		a.running = true
		go a.work()
	}
}

func (a *analyzer) work() {
	for {
		a.mu.Lock()
		job := a.pending
		a.pending = nil
		if job == nil {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		a.run(*job)
	}
}

// run analyzes one job, waiting at most a.timeout before saying so.
func (a *analyzer) run(job analysisJob) {
	start := time.Now()
	done := make(chan AnalysisStatus, 1)
	go func() { done <- a.analyze(job, cmp.Or(job.mesh, a.mesh)) }()
	var st AnalysisStatus
	select {
	case st = <-done:
	case <-time.After(a.timeout):
		a.publish(func(last *AnalysisStatus) {
			last.Error = fmt.Sprintf("analysis of config version %d still running after %s; the messages shown are of config version %d",
				job.configVersion, a.timeout, last.ConfigVersion)
		})
		a.log.Warn("config analysis is slow; pushes are not affected", "config_version", job.configVersion, "after", a.timeout)
		st = <-done
	}
	st.Time = time.Now()
	st.Duration = int64(time.Since(start))
	if st.Error != "" {
		a.log.Error("config analysis failed; pushes are not affected", "config_version", job.configVersion, "error", st.Error)
	}
	var fresh []analysis.Finding
	a.publish(func(last *AnalysisStatus) {
		fresh = newFindings(last.Messages, st.Messages)
		*last = st
	})
	for _, f := range fresh {
		a.log.Warn("config analysis", "code", f.Code, "level", f.Level, "resource", f.Resource, "origin", f.Origin, "message", f.Message)
	}
	if a.onDone != nil {
		a.onDone()
	}
	a.log.Info("config analyzed", "config_version", job.configVersion, "messages", len(st.Messages),
		"took", time.Duration(st.Duration).Round(time.Microsecond))
}

// analyze runs the control plane's analyzers over the job's config. A
// panic in an analyzer is a sluice bug: it is reported, never fatal.
func analyze(job analysisJob, mesh *meshv1alpha1.MeshConfig) (st AnalysisStatus) {
	st = AnalysisStatus{ConfigVersion: job.configVersion, PushVersion: job.pushVersion,
		Analyzers: analysis.ControlPlaneAnalyzers(), Messages: []analysis.Finding{}, ByResource: map[string][]analysis.Finding{}}
	defer func() {
		if r := recover(); r != nil {
			st.Error = fmt.Sprintf("analyzer panic (a sluice bug): %v", r)
		}
	}()
	msgs, err := analysis.Run(analysis.FromResources(job.resources, mesh), analysis.RunOptions{Analyzers: st.Analyzers})
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.cluster = map[analysisstatus.Ref][]analysisstatus.Message{}
	cluster := clusterObjects(job.resources)
	for _, ref := range cluster {
		st.clusterAll = append(st.clusterAll, ref)
	}
	for _, m := range msgs {
		f := m.Finding()
		st.Messages = append(st.Messages, f)
		st.ByResource[f.Resource] = append(st.ByResource[f.Resource], f)
		if ref, ok := cluster[m.Resource]; ok {
			st.cluster[ref] = append(st.cluster[ref], analysisstatus.Message{Code: m.Code(), Level: m.Level().String()})
		}
	}
	return st
}

// newFindings are the findings of now not in before: each message is
// logged once, when it first appears.
func newFindings(before, now []analysis.Finding) []analysis.Finding {
	old := make(map[analysis.Finding]bool, len(before))
	for _, f := range before {
		old[f] = true
	}
	var out []analysis.Finding
	for _, f := range now {
		if !old[f] {
			out = append(out, f)
		}
	}
	return out
}

func (a *analyzer) publish(change func(*AnalysisStatus)) {
	a.mu.Lock()
	change(&a.last)
	a.mu.Unlock()
}

// status returns a copy of the newest result.
func (a *analyzer) status() AnalysisStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.last
	st.Messages = append([]analysis.Finding{}, st.Messages...)
	st.ByResource = make(map[string][]analysis.Finding, len(a.last.ByResource))
	for k, v := range a.last.ByResource {
		st.ByResource[k] = append([]analysis.Finding(nil), v...)
	}
	return st
}

// AnalysisSummary is the analysis part of /debug/status: the messages of
// the newest analysis per resource.
type AnalysisSummary struct {
	ConfigVersion uint64                        `json:"config_version"`
	Error         string                        `json:"error,omitempty"`
	ByResource    map[string][]analysis.Finding `json:"by_resource"`
}

// analysisSummary is the /debug/status view of the newest analysis.
func (c *Controller) analysisSummary() AnalysisSummary {
	st := c.analysis.status()
	return AnalysisSummary{ConfigVersion: st.ConfigVersion, Error: st.Error, ByResource: st.ByResource}
}

// mountAnalysis serves /debug/analysis: the newest analysis as JSON
// (AnalysisStatus), for the dashboard and `sluice status`.
func (c *Controller) mountAnalysis(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/analysis", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, c.analysis.status())
	})
}

// clusterObjects maps the Istio objects read from the cluster (the
// kinds of *.istio.io groups, as istiod writes status for "non-istio
// types" never) to their references.
func clusterObjects(resources []*config.Resource) map[analysis.ResourceRef]analysisstatus.Ref {
	out := map[analysis.ResourceRef]analysisstatus.Ref{}
	for _, r := range resources {
		group, _, _ := strings.Cut(r.APIVersion, "/")
		if r.Source.File != kubesource.SourceName || !strings.HasSuffix(group, "istio.io") {
			continue
		}
		out[analysis.ResourceRef{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name}] =
			analysisstatus.Ref{Group: group, Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name}
	}
	return out
}
