package analysis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

const loadInput = `# a comment before the first document
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  gateways:
  - web
  http:
  - route:
    - destination: {host: reviews}
---

# the Pod's document starts at this comment, as Istio counts
apiVersion: v1
kind: Pod
metadata:
  name: reviews-1
  namespace: prod
  labels: {app: reviews}
spec:
  nodeName: node-a
  containers: [{name: app, image: reviews}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: reviews}
  spec:
    ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata: {labels: {app: reviews}}
    spec:
      containers: [{name: app, image: reviews}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: broken}
spec:
  host: [not, a, string]
`

func TestLoadOriginsAndKinds(t *testing.T) {
	s := LoadBytes("in.yaml", []byte(loadInput), LoadOptions{DefaultNamespace: "team"})
	want := []struct {
		kind      config.Kind
		ns, name  string
		line      int
		specCheck func(any) bool
	}{
		{config.KindVirtualService, "team", "reviews", 3, nil},
		{KindPod, "prod", "reviews-1", 16, func(s any) bool { return s.(*corev1.Pod).Spec.NodeName == "node-a" }},
		{config.KindService, "team", "reviews", 30, func(s any) bool { return len(s.(*corev1.ServiceSpec).Ports) == 1 }},
		{KindDeployment, "team", "reviews", 36, nil},
	}
	for _, w := range want {
		o := s.Find(w.kind, w.ns, w.name)
		if o == nil {
			t.Errorf("%s %s/%s not loaded", w.kind, w.ns, w.name)
			continue
		}
		if o.Origin != (Origin{"in.yaml", w.line}) {
			t.Errorf("%s %s/%s origin %v, want in.yaml:%d", w.kind, w.ns, w.name, o.Origin, w.line)
		}
		if w.specCheck != nil && !w.specCheck(o.Spec) {
			t.Errorf("%s %s/%s spec not decoded: %+v", w.kind, w.ns, w.name, o.Spec)
		}
	}
	if line, ok := s.Find(config.KindVirtualService, "team", "reviews").errorLine("{.spec.gateways[0]}"); !ok || line != 10 {
		t.Errorf("line of spec.gateways[0] = %d, %v; want 10", line, ok)
	}
	if len(s.Errors) != 1 || !strings.HasPrefix(s.Errors[0].Error(), "in.yaml:50: DestinationRule") {
		t.Errorf("errors = %v, want one for the DestinationRule at in.yaml:50", s.Errors)
	}
	if len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0], "ConfigMap") {
		t.Errorf("skipped = %v, want the ConfigMap", s.Skipped)
	}
	if s.Find(KindPod, "istio-system", "istio-ingressgateway-dummypod") == nil || s.Find(config.KindService, "istio-system", "istio-ingressgateway") == nil {
		t.Error("the default ingress gateway Pod and Service were not added")
	}
	if len(s.Registry.ServicesForHost("reviews.team.svc.cluster.local")) != 1 {
		t.Error("the registry does not hold the Service")
	}
}

func TestLoadWithoutDefaultNamespace(t *testing.T) {
	s := LoadBytes("in.yaml", []byte(loadInput), LoadOptions{})
	if s.Find(config.KindVirtualService, "", "reviews") == nil || s.Find(KindPod, "prod", "reviews-1") == nil {
		t.Error("a resource without a namespace should keep none; one with a namespace keeps it")
	}
}

func TestLoadFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"a.yaml":     "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n",
		"sub/b.yml":  "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{name: http, port: 80}]}\n",
		"sub/c.json": `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}, "spec": {"ports": [{"name": "http", "port": 80}]}}`,
		"notes.txt":  "apiVersion: v1\nkind: Service\nmetadata: {name: d}\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Load([]string{dir}, LoadOptions{DefaultNamespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if s.Find(config.KindService, "default", n) == nil {
			t.Errorf("Service %s not loaded", n)
		}
	}
	if s.Find(config.KindService, "default", "d") != nil || len(s.SkippedFiles) != 1 || s.SkippedFiles[0] != filepath.Join(dir, "notes.txt") {
		t.Errorf("a .txt file was read, or not listed as skipped: %v", s.SkippedFiles)
	}
	s, err = Load([]string{"-"}, LoadOptions{DefaultNamespace: "default", Stdin: strings.NewReader(files["a.yaml"])})
	if err != nil || s.Find(config.KindService, "default", "a") == nil || s.Find(config.KindService, "default", "a").Origin.File != "-" {
		t.Errorf("standard input not read as \"-\": %v", err)
	}
	if _, err := Load([]string{"-"}, LoadOptions{}); err == nil {
		t.Error("\"-\" without standard input was accepted")
	}
	if _, err := Load([]string{filepath.Join(dir, "missing")}, LoadOptions{}); err == nil {
		t.Error("a missing path was accepted")
	}
	if _, err := Load([]string{dir}, LoadOptions{MeshConfigFile: filepath.Join(dir, "a.yaml")}); err == nil {
		t.Error("a mesh config that is not one was accepted")
	}
}

// TestLocalMeshSkipsWorkloadAnalyzers: a local mesh's folder (workloads
// as WorkloadEntries, no Pods) is analysed without the analyzers that
// read Pods, which would call its subsets empty (IST0173); they run when
// named, and on input that has Pods.
func TestLocalMeshSkipsWorkloadAnalyzers(t *testing.T) {
	s, err := Load([]string{filepath.Join("..", "xdsgen", "testdata", "canary.yaml")}, LoadOptions{DefaultNamespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if s.HasWorkloads() {
		t.Fatal("canary.yaml has no Pods, but HasWorkloads says it has")
	}
	codes := func(opts RunOptions) map[string]int {
		msgs, err := Run(s, opts)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, m := range msgs {
			out[m.Code()]++
		}
		return out
	}
	if n := codes(RunOptions{})["IST0173"]; n != 0 {
		t.Errorf("all analyzers on a local mesh: %d IST0173, want none", n)
	}
	if n := codes(RunOptions{Analyzers: []string{"destinationrule.SubsetSelectPodAnalyzer"}})["IST0173"]; n == 0 {
		t.Error("the subset analyzer named explicitly did not run")
	}
}
