package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	evanjsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var testConfig = Config{Image: "sluice:test", XDSAddress: "istiod.istio-system.svc:15012", TrustDomain: "cluster.local", NativeSidecar: true}

func TestRequired(t *testing.T) {
	pod := func(mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{}, Annotations: map[string]string{}}}
		mut(p)
		return p
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		ns   string
		want bool
	}{
		{"plain", pod(func(*corev1.Pod) {}), "default", true},
		{"hostNetwork", pod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), "default", false},
		{"kube-system", pod(func(*corev1.Pod) {}), "kube-system", false},
		{"kube-public", pod(func(*corev1.Pod) {}), "kube-public", false},
		{"annotation false", pod(func(p *corev1.Pod) { p.Annotations[LabelSidecarInject] = "false" }), "default", false},
		{"label false", pod(func(p *corev1.Pod) { p.Labels[LabelSidecarInject] = "false" }), "default", false},
		{"label true wins over annotation false", pod(func(p *corev1.Pod) {
			p.Labels[LabelSidecarInject] = "true"
			p.Annotations[LabelSidecarInject] = "false"
		}), "default", true},
		{"label false wins over annotation true", pod(func(p *corev1.Pod) {
			p.Labels[LabelSidecarInject] = "false"
			p.Annotations[LabelSidecarInject] = "true"
		}), "default", false},
		{"invalid value falls back to the default", pod(func(p *corev1.Pod) { p.Annotations[LabelSidecarInject] = "yes" }), "default", true},
		{"already injected", pod(func(p *corev1.Pod) { p.Annotations[AnnotationStatus] = "{}" }), "default", false},
	}
	for _, c := range cases {
		if d := Required(c.pod, c.ns); d.Inject != c.want {
			t.Errorf("%s: Required = %+v, want inject=%v", c.name, d, c.want)
		}
	}
}

func TestSelected(t *testing.T) {
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name     string
		rev      string
		ns, pod  map[string]string
		selected bool
	}{
		{"namespace enabled", "", l("istio-injection", "enabled"), l(), true},
		{"namespace enabled, pod opts out", "", l("istio-injection", "enabled"), l("sidecar.istio.io/inject", "false"), false},
		{"namespace disabled", "", l("istio-injection", "disabled"), l(), false},
		{"namespace disabled, pod opts in", "", l("istio-injection", "disabled"), l("sidecar.istio.io/inject", "true"), false},
		{"unlabelled", "", l(), l(), false},
		{"unlabelled, pod opts in", "", l(), l("sidecar.istio.io/inject", "true"), true},
		{"namespace rev default", "", l("istio.io/rev", "default"), l(), true},
		{"namespace rev other", "", l("istio.io/rev", "canary"), l(), false},
		{"istio-injection wins over rev", "canary", l("istio-injection", "enabled", "istio.io/rev", "canary"), l(), false},
		{"canary namespace", "canary", l("istio.io/rev", "canary"), l(), true},
		{"canary: istio-injection is the default revision's", "canary", l("istio-injection", "enabled"), l(), false},
		{"canary pod label in unlabelled namespace", "canary", l(), l("istio.io/rev", "canary"), true},
		{"canary pod opts in without rev", "canary", l(), l("sidecar.istio.io/inject", "true"), false},
		{"pod rev in an enabled namespace is the default's", "", l("istio-injection", "enabled"), l("istio.io/rev", "canary"), true},
	}
	for _, c := range cases {
		got, err := Selected(WebhookOptions{Revision: c.rev, Namespace: "istio-system"}, c.ns, c.pod)
		if err != nil || got != c.selected {
			t.Errorf("%s: Selected = %v, %v; want %v", c.name, got, err, c.selected)
		}
	}
	if n := (WebhookOptions{Revision: "canary", Namespace: "istio-system"}).ConfigurationName(); n != "istio-sidecar-injector-canary" {
		t.Errorf("canary configuration name %q", n)
	}
	if n := (WebhookOptions{Namespace: "istio-system"}).ConfigurationName(); n != "istio-sidecar-injector" {
		t.Errorf("default configuration name %q", n)
	}
}

// istioCase reads one of Istio's injector test inputs
// (pkg/kube/inject/testdata/inject at istio commit 86c9f01f) and its
// expected output.
func istioCase(t *testing.T, name string) (in, want []byte) {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", "istio", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ = os.ReadFile(filepath.Join("testdata", "istio", name+".yaml.injected"))
	return in, want
}

// podSpecs are the pod templates (or pods) of a multi-document YAML.
func podSpecs(t *testing.T, b []byte) []corev1.PodTemplateSpec {
	t.Helper()
	var out []corev1.PodTemplateSpec
	r := utilyaml.NewYAMLReader(bufioReader(b))
	for {
		doc, err := r.Read()
		if err != nil {
			return out
		}
		var obj struct {
			Kind     string                  `json:"kind"`
			Metadata metav1.ObjectMeta       `json:"metadata"`
			Spec     corev1.PodSpec          `json:"spec"`
			Items    []json.RawMessage       `json:"items"`
			Template *corev1.PodTemplateSpec `json:"-"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		switch obj.Kind {
		case "":
			continue
		case "Pod":
			out = append(out, corev1.PodTemplateSpec{ObjectMeta: obj.Metadata, Spec: obj.Spec})
		case "List":
			for _, it := range obj.Items {
				out = append(out, podSpecs(t, it)...)
			}
		default:
			var m map[string]any
			yaml.Unmarshal(doc, &m)
			for _, k := range templatePaths[obj.Kind] {
				m, _ = m[k].(map[string]any)
			}
			raw, _ := json.Marshal(m)
			var pt corev1.PodTemplateSpec
			if err := json.Unmarshal(raw, &pt); err != nil {
				t.Fatal(err)
			}
			out = append(out, pt)
		}
	}
}

func container(spec corev1.PodSpec, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestIstioProbeRewrite compares the rewritten probes and lifecycle
// handlers of the app containers, and ISTIO_KUBE_APP_PROBERS, with
// Istio's expected output for its probe test inputs.
func TestIstioProbeRewrite(t *testing.T) {
	for _, name := range []string{"hello-probes", "named_port", "tcp-probes", "ready_live", "ready_only",
		"startup_live", "startup_only", "startup_ready_live", "https-probes", "hello-probes-with-flag-set-in-annotation",
		"hello-probes-with-flag-unset-in-annotation", "status_params", "multi-init"} {
		t.Run(name, func(t *testing.T) {
			in, wantYAML := istioCase(t, name)
			got, err := InjectYAML(bytes.NewReader(in), "default", testConfig)
			if err != nil {
				t.Fatal(err)
			}
			gotPods, wantPods := podSpecs(t, got), podSpecs(t, wantYAML)
			if len(gotPods) != len(wantPods) || len(gotPods) == 0 {
				t.Fatalf("%d pod templates, Istio's output has %d", len(gotPods), len(wantPods))
			}
			for i := range gotPods {
				comparePod(t, gotPods[i].Spec, wantPods[i].Spec)
			}
		})
	}
}

func comparePod(t *testing.T, got, want corev1.PodSpec) {
	t.Helper()
	gp, wp := container(got, ProxyContainerName), container(want, ProxyContainerName)
	if gp == nil || wp == nil {
		t.Fatalf("istio-proxy missing: ours %v, Istio's %v", gp != nil, wp != nil)
	}
	if g, w := env(gp, EnvAppProbers), env(wp, EnvAppProbers); !jsonEqual(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", EnvAppProbers, g, w)
	}
	for _, list := range [][]corev1.Container{want.InitContainers, want.Containers} {
		for _, wc := range list {
			if wc.Name == ProxyContainerName || wc.Name == "istio-init" || wc.Name == "istio-validation" {
				continue
			}
			gc := container(got, wc.Name)
			if gc == nil {
				t.Errorf("container %s missing", wc.Name)
				continue
			}
			for _, p := range [][2]any{{gc.ReadinessProbe, wc.ReadinessProbe}, {gc.LivenessProbe, wc.LivenessProbe}, {gc.StartupProbe, wc.StartupProbe}, {gc.Lifecycle, wc.Lifecycle}} {
				if !reflect.DeepEqual(p[0], p[1]) {
					g, _ := json.Marshal(p[0])
					w, _ := json.Marshal(p[1])
					t.Errorf("container %s: got %s, Istio's %s", wc.Name, g, w)
				}
			}
		}
	}
}

func jsonEqual(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestIstioWorkloadKinds: every workload kind's pod template is
// injected; hostNetwork and opted-out pods are left as they are.
func TestIstioWorkloadKinds(t *testing.T) {
	for _, c := range []struct {
		name     string
		injected bool
	}{
		{"hello", true}, {"cronjob", true}, {"daemonset", true}, {"statefulset", true}, {"job", true},
		{"replicaset", true}, {"replicationcontroller", true}, {"list", true},
		{"hello-host-network", false}, {"hello-ignore", false},
	} {
		in, want := istioCase(t, c.name)
		got, err := InjectYAML(bytes.NewReader(in), "default", testConfig)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		gotPods, wantPods := podSpecs(t, got), podSpecs(t, want)
		if len(gotPods) != len(wantPods) || len(gotPods) == 0 {
			t.Fatalf("%s: %d pod templates, Istio's output %d", c.name, len(gotPods), len(wantPods))
		}
		for i, p := range gotPods {
			has := container(p.Spec, ProxyContainerName) != nil
			if has != c.injected || (container(wantPods[i].Spec, ProxyContainerName) != nil) != c.injected {
				t.Errorf("%s template %d: injected %v, want %v (as Istio's)", c.name, i, has, c.injected)
			}
		}
	}
}

// TestIstioBadTrafficAnnotations: Istio's rejected inputs are rejected,
// the error naming the annotation.
func TestIstioBadTrafficAnnotations(t *testing.T) {
	for name, ann := range map[string]string{
		"excludeinboundports":  "traffic.sidecar.istio.io/excludeInboundPorts",
		"excludeipranges":      "traffic.sidecar.istio.io/excludeOutboundIPRanges",
		"excludeoutboundports": "traffic.sidecar.istio.io/excludeOutboundPorts",
		"includeinboundports":  "traffic.sidecar.istio.io/includeInboundPorts",
		"includeipranges":      "traffic.sidecar.istio.io/includeOutboundIPRanges",
	} {
		in, err := os.ReadFile(filepath.Join("testdata", "istio", "traffic-annotations-bad-"+name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = InjectYAML(bytes.NewReader(in), "default", testConfig)
		if err == nil || !strings.Contains(err.Error(), ann) || !strings.Contains(err.Error(), "Deployment default/traffic") {
			t.Errorf("%s: error %v, want one naming %s and the Deployment", name, err, ann)
		}
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "reviews-v1-5d8f9c-", Namespace: "bookinfo",
			Labels:      map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "5d8f9c"},
			Annotations: map[string]string{"traffic.sidecar.istio.io/excludeOutboundPorts": "3306"}},
		Spec: corev1.PodSpec{ServiceAccountName: "bookinfo-reviews", Containers: []corev1.Container{{Name: "app", Image: "reviews"}}},
	}
}

func TestInjectTemplate(t *testing.T) {
	for _, native := range []bool{true, false} {
		cfg := testConfig
		cfg.NativeSidecar = native
		in := testPod()
		out, err := Inject(in, "bookinfo", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Spec.InitContainers) != 0 || len(in.Spec.Containers) != 1 || in.Annotations[AnnotationStatus] != "" {
			t.Fatalf("input mutated: %+v", in)
		}
		var sc *corev1.Container
		if native {
			sc = &out.Spec.InitContainers[1]
			if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways || sc.StartupProbe == nil {
				t.Errorf("native sidecar: restartPolicy %v, startupProbe %v", sc.RestartPolicy, sc.StartupProbe)
			}
		} else {
			sc = &out.Spec.Containers[1]
			if sc.RestartPolicy != nil || len(out.Spec.InitContainers) != 1 {
				t.Errorf("regular sidecar has a restartPolicy or init containers besides the capture")
			}
		}
		if sc.Name != ProxyContainerName || *sc.SecurityContext.RunAsUser != 1337 || !*sc.SecurityContext.RunAsNonRoot {
			t.Errorf("proxy container %s uid %d", sc.Name, *sc.SecurityContext.RunAsUser)
		}
		args := strings.Join(sc.Args, " ")
		for _, want := range []string{"proxy --type sidecar", "--name $(POD_NAME)", "--namespace $(POD_NAMESPACE)",
			"--service-account $(SERVICE_ACCOUNT)", "--labels app=reviews,pod-template-hash=5d8f9c,security.istio.io/tlsMode=istio,service.istio.io/canonical-name=reviews,service.istio.io/canonical-revision=v1,version=v1",
			"--xds-address istiod.istio-system.svc:15012", "--token-file /var/run/secrets/tokens/istio-token", "--agent-address 0.0.0.0:15020",
			"--interception-mode REDIRECT"} {
			if !strings.Contains(args, want) {
				t.Errorf("args %q lack %q", args, want)
			}
		}
		var tok *corev1.ServiceAccountTokenProjection
		for _, v := range out.Spec.Volumes {
			if v.Name == VolumeToken {
				tok = v.Projected.Sources[0].ServiceAccountToken
			}
		}
		if tok == nil || tok.Audience != "istio-ca" || tok.Path != "istio-token" {
			t.Errorf("token volume %+v", tok)
		}
		var st Status
		if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &st); err != nil {
			t.Fatal(err)
		}
		// The capture init container first: `sluice capture` with the
		// pod's istio-iptables arguments, root with NET_ADMIN and NET_RAW.
		ci := out.Spec.InitContainers[0]
		wantCapture := "capture -p 15001 -z 15006 -u 1337 -m REDIRECT -i * -o 3306 -b * -d 15090,15020"
		if ci.Name != CaptureContainerName || strings.Join(ci.Args, " ") != wantCapture || *ci.SecurityContext.RunAsUser != 0 ||
			fmt.Sprint(ci.SecurityContext.Capabilities.Add) != "[NET_ADMIN NET_RAW]" || *ci.SecurityContext.AllowPrivilegeEscalation {
			t.Errorf("capture init container %s args %q security %+v", ci.Name, ci.Args, ci.SecurityContext)
		}
		wantInits := []string{CaptureContainerName}
		if native {
			wantInits = append(wantInits, ProxyContainerName)
		}
		if st.Revision != "default" || len(st.Volumes) != 2 || !slices.Equal(st.InitContainers, wantInits) {
			t.Errorf("status %+v", st)
		}
		if out.Annotations["prometheus.io/port"] != "15090" || out.Labels[LabelTLSMode] != "istio" ||
			out.Labels[LabelCanonicalName] != "reviews" || out.Labels[LabelCanonicalRevision] != "v1" {
			t.Errorf("annotations %v labels %v", out.Annotations, out.Labels)
		}
		// The patch turns the original into the mutated pod.
		patch, err := Patch(in, out)
		if err != nil {
			t.Fatal(err)
		}
		applied := applyPatch(t, in, patch)
		if !reflect.DeepEqual(applied, out) {
			t.Errorf("patched pod differs from the mutation:\n%s", patch)
		}
	}
}

func applyPatch(t *testing.T, pod *corev1.Pod, patch []byte) *corev1.Pod {
	t.Helper()
	p, err := evanjsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := json.Marshal(pod)
	b, err := p.Apply(orig)
	if err != nil {
		t.Fatal(err)
	}
	var out corev1.Pod
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestWorkloadName(t *testing.T) {
	for _, c := range []struct{ gen, hash, name, want string }{
		{"reviews-v1-5d8f9c-", "5d8f9c", "", "reviews-v1"},
		{"ds-", "", "", "ds"},
		{"", "", "bare", "bare"},
	} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: c.gen, Name: c.name, Labels: map[string]string{"pod-template-hash": c.hash}}}
		if c.hash == "" {
			delete(p.Labels, "pod-template-hash")
		}
		if got := workloadName(p); got != c.want {
			t.Errorf("workloadName(%q) = %q, want %q", c.gen+c.name, got, c.want)
		}
	}
}

func TestPrometheusAnnotationsKept(t *testing.T) {
	p := testPod()
	p.Annotations["prometheus.io/scrape"] = "false"
	out, err := Inject(p, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if out.Annotations["prometheus.io/scrape"] != "false" || out.Annotations["prometheus.io/port"] != "" {
		t.Errorf("pod's own scrape annotation overwritten: %v", out.Annotations)
	}
	if !slices.Contains(container(out.Spec, ProxyContainerName).Args, "--metrics-address") {
		t.Errorf("no metrics address")
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// TestProbeRewriteKinds: a gRPC probe and a probe already aimed at the
// agent port (no Istio input has them), and the opt-out annotation.
func TestProbeRewriteKinds(t *testing.T) {
	svc := "ready"
	p := testPod()
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: &svc}}, TimeoutSeconds: 4}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/x", Port: intstr.FromInt(AgentPort)}}}
	out, err := Inject(p, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	app := out.Spec.Containers[0]
	if g := app.ReadinessProbe; g.GRPC != nil || g.HTTPGet == nil || g.HTTPGet.Path != "/app-health/app/readyz" || g.HTTPGet.Port.IntVal != AgentPort || g.TimeoutSeconds != 4 {
		t.Errorf("grpc probe rewritten to %+v", g)
	}
	want := `{"/app-health/app/readyz":{"grpc":{"port":9090,"service":"ready"},"timeoutSeconds":4}}`
	if got := env(container(out.Spec, ProxyContainerName), EnvAppProbers); !jsonEqual(got, want) {
		t.Errorf("%s = %s, want %s (the probe on the agent port is not recorded)", EnvAppProbers, got, want)
	}
	p.Annotations[AnnotationRewriteProbers] = "false"
	out, err = Inject(p, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Containers[0].ReadinessProbe.GRPC == nil || env(container(out.Spec, ProxyContainerName), EnvAppProbers) != "" {
		t.Errorf("rewriteAppHTTPProbers=false still rewrote")
	}
	p.Annotations[AnnotationRewriteProbers] = "maybe"
	if _, err := Inject(p, "bookinfo", testConfig); err == nil || !strings.Contains(err.Error(), AnnotationRewriteProbers) {
		t.Errorf("bad %s: %v", AnnotationRewriteProbers, err)
	}
}

// TestProxyOverride: the pod's own istio-proxy container overrides the
// template's fields, as Istio's (proxy-override.yaml).
func TestProxyOverride(t *testing.T) {
	p := testPod()
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
		Name: ProxyContainerName, Image: "sluice:custom",
		Env: []corev1.EnvVar{{Name: "EXTRA", Value: "1"}},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("256Mi")}},
	})
	out, err := Inject(p, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, list := range [][]corev1.Container{out.Spec.InitContainers, out.Spec.Containers} {
		for _, c := range list {
			if c.Name == ProxyContainerName {
				n++
			}
		}
	}
	sc := out.Spec.InitContainers[1] // after the capture init container
	if n != 1 || sc.Name != ProxyContainerName || len(out.Spec.Containers) != 1 {
		t.Fatalf("%d istio-proxy containers; init %v", n, out.Spec.InitContainers)
	}
	if sc.Image != "sluice:custom" || sc.Resources.Limits.Memory().String() != "256Mi" || env(&sc, "EXTRA") != "1" ||
		len(sc.Args) == 0 || sc.Args[0] != "proxy" || sc.RestartPolicy == nil {
		t.Errorf("merged proxy container: %+v", sc)
	}
	names := map[string]bool{}
	for _, e := range sc.Env {
		names[e.Name] = true
	}
	if !names["POD_NAME"] || !names["SERVICE_ACCOUNT"] || len(sc.Env) != 5 {
		t.Errorf("template env not merged with the override's: %v", names)
	}
}

// TestCaptureInitModes: interception mode NONE gets no capture init
// container (Istio's template), TPROXY (not implemented by sluice
// capture) is refused naming the annotation, and a pod's own istio-init
// container overrides the template's as istio-proxy's does.
func TestCaptureInitModes(t *testing.T) {
	none := testPod()
	none.Annotations["sidecar.istio.io/interceptionMode"] = "NONE"
	out, err := Inject(none, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c := container(out.Spec, CaptureContainerName); c != nil {
		t.Errorf("NONE: capture init container %+v", c)
	}
	// Nothing is captured: the sidecar serves local mode's listeners.
	if args := strings.Join(container(out.Spec, ProxyContainerName).Args, " "); !strings.Contains(args, "--interception-mode NONE") {
		t.Errorf("NONE: proxy args %q", args)
	}
	tproxy := testPod()
	tproxy.Annotations["sidecar.istio.io/interceptionMode"] = "TPROXY"
	if _, err := Inject(tproxy, "bookinfo", testConfig); err == nil || !strings.Contains(err.Error(), "sidecar.istio.io/interceptionMode") ||
		!strings.Contains(err.Error(), "TPROXY: not supported") {
		t.Errorf("TPROXY: err %v", err)
	}
	own := testPod()
	own.Spec.InitContainers = []corev1.Container{{Name: CaptureContainerName, Image: "sluice:mine"}}
	out, err = Inject(own, "bookinfo", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range out.Spec.InitContainers {
		if c.Name == CaptureContainerName {
			n++
		}
	}
	if c := container(out.Spec, CaptureContainerName); n != 1 || c.Image != "sluice:mine" || c.Args[0] != "capture" {
		t.Errorf("override: %d capture containers, %+v", n, c)
	}
}
