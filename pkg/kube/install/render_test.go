package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/config/kubesource"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
	"github.com/sluice-mesh/sluice/pkg/kube/nodeagent"
)

// chartDir is the chart in the repository, as `helm install` reads it.
const chartDir = "../../../manifests/charts/sluice"

// helmTemplate renders a chart folder as `helm template sluice DIR -n NS
// --set ...` does: Helm's directory loader, values over the chart's
// (schema checked), Helm's engine. Nothing of the installer's rendering.
func helmTemplate(t *testing.T, ch *chartv2.Chart, vals map[string]any, ns string) map[string]*unstructured.Unstructured {
	t.Helper()
	rv, err := util.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{Name: "sluice", Namespace: ns, Revision: 1, IsInstall: true}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for name, s := range out {
		if strings.HasSuffix(name, ".yaml") {
			docs = append(docs, s)
		}
	}
	objs, err := Decode(docs)
	if err != nil {
		t.Fatal(err)
	}
	return byKey(t, objs)
}

func byKey(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		k := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		if _, dup := m[k]; dup {
			t.Fatalf("%s rendered twice", k)
		}
		m[k] = o
	}
	return m
}

// diff names the objects only one side has or that differ.
func diff(a, b map[string]*unstructured.Unstructured) []string {
	var out []string
	for k, o := range a {
		switch p, ok := b[k]; {
		case !ok:
			out = append(out, "only in CLI: "+k)
		case !reflect.DeepEqual(o.Object, p.Object):
			out = append(out, "differs: "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "only in chart: "+k)
		}
	}
	slices.Sort(out)
	return out
}

// TestRenderEqualsHelmChart: for every profile, with and without a
// revision, what `sluice manifest generate` renders (the embedded chart)
// equals what Helm renders from manifests/charts/sluice with the same
// values; and a one-line change to the chart on disk is a difference.
func TestRenderEqualsHelmChart(t *testing.T) {
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds := map[string][]string{
		"empty":   nil,
		"minimal": {"ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment", "MutatingWebhookConfiguration", "Role", "RoleBinding", "Service", "ServiceAccount"},
		"ambient": {"ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "DaemonSet", "Deployment", "MutatingWebhookConfiguration", "Role", "RoleBinding", "Service", "ServiceAccount"},
	}
	for _, profile := range Profiles {
		for _, rev := range []string{"", "canary"} {
			set := []string{"profile=" + profile, "tag=1.2.3", "hub=example.com/mesh"}
			if (profile == "demo" || profile == "ambient") && rev != "" {
				continue // meshConfig, ztunnel with a revision are refused (TestRenderRejects)
			}
			m, err := Render(RenderOptions{Set: set, Revision: rev, Namespace: "mesh-system"})
			if err != nil {
				t.Fatalf("%s/%q: %v", profile, rev, err)
			}
			vals := map[string]any{"profile": profile, "tag": "1.2.3", "hub": "example.com/mesh"}
			if rev != "" {
				vals["revision"] = rev
			}
			helm := helmTemplate(t, ch, vals, "mesh-system")
			cli := byKey(t, m.Objects)
			if d := diff(cli, helm); len(d) > 0 {
				t.Errorf("%s/%q: CLI and chart differ:\n%s", profile, rev, strings.Join(d, "\n"))
			}
			if want, ok := wantKinds[profile]; ok && rev == "" {
				if got := kinds(m.Objects); !slices.Equal(got, want) {
					t.Errorf("%s: kinds %v, want %v", profile, got, want)
				}
			}
			for _, o := range m.Objects {
				if o.GetLabels()[LabelManagedBy] != ManagedBy {
					t.Errorf("%s: %s lacks %s=%s", profile, describe(o), LabelManagedBy, ManagedBy)
				}
				if rev != "" && o.GetKind() != "CustomResourceDefinition" && o.GetLabels()[LabelRevision] != rev {
					t.Errorf("%s: %s has %s=%q, want %s", profile, describe(o), LabelRevision, o.GetLabels()[LabelRevision], rev)
				}
			}
		}
	}
	// The comparison sees a real difference: the same chart with one
	// Service port changed.
	changed := copyChart(t, chartDir, "templates/istiod-service.yaml", "port: 15014", "port: 15015")
	ch2, err := loader.LoadDir(changed)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Render(RenderOptions{Set: []string{"profile=minimal", "tag=1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	d := diff(byKey(t, m.Objects), helmTemplate(t, ch2, map[string]any{"profile": "minimal", "tag": "1.2.3"}, DefaultNamespace))
	if !slices.Equal(d, []string{"differs: Service istio-system/istiod"}) {
		t.Errorf("changed chart: diff %v, want the istiod Service only", d)
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if !slices.Contains(out, o.GetKind()) {
			out = append(out, o.GetKind())
		}
	}
	slices.Sort(out)
	return out
}

// copyChart copies the chart folder, replacing old by new in one file.
func copyChart(t *testing.T, src, file, old, new string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sluice")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dst, file)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestRenderProfiles checks what each profile installs, as Istio's.
func TestRenderProfiles(t *testing.T) {
	deployments := map[string][]string{
		"default": {"istio-ingressgateway", "istiod"},
		"demo":    {"istio-egressgateway", "istio-ingressgateway", "istiod"},
		"minimal": {"istiod"},
		"empty":   nil,
		"ambient": {"istiod"},
	}
	for profile, want := range deployments {
		m, err := Render(RenderOptions{Set: []string{"profile=" + profile}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		crds := 0
		for _, o := range m.Objects {
			switch o.GetKind() {
			case "Deployment":
				got = append(got, o.GetName())
			case "CustomResourceDefinition":
				crds++
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Deployments %v, want %v", profile, got, want)
		}
		if profile != "empty" && crds != 25 {
			t.Errorf("%s: %d CRDs, want 25 (15 Istio, 10 Gateway API standard)", profile, crds)
		}
	}
	m, err := Render(RenderOptions{Set: []string{"profile=demo"}})
	if err != nil {
		t.Fatal(err)
	}
	cm := find(t, m, "ConfigMap", "istio")
	if mesh, _, _ := unstructured.NestedString(cm.Object, "data", "mesh"); mesh != "accessLogFile: /dev/stdout" {
		t.Errorf("demo mesh config %q", mesh)
	}
	m, err = Render(RenderOptions{Set: []string{"profile=minimal", "hub=reg.example/x", "tag=9.9"}, Revision: "canary"})
	if err != nil {
		t.Fatal(err)
	}
	d := find(t, m, "Deployment", "istiod-canary")
	args, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := args[0].(map[string]any)
	if c["image"] != "reg.example/x/sluice:9.9" {
		t.Errorf("image %v", c["image"])
	}
	for _, want := range []string{"--revision=canary", "--injection-xds-address=istiod-canary.istio-system.svc:15012", "--sidecar-image=reg.example/x/sluice:9.9"} {
		if !slices.Contains(c["args"].([]any), any(want)) {
			t.Errorf("istiod-canary args %v lack %s", c["args"], want)
		}
	}
	find(t, m, "MutatingWebhookConfiguration", "istio-sidecar-injector-canary")
}

func find(t *testing.T, m *Manifest, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range m.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// TestRenderRejects: values the chart does not take are errors naming them.
func TestRenderRejects(t *testing.T) {
	for _, c := range []struct {
		set  []string
		rev  string
		want string
	}{
		{set: []string{"profile=ambient"}, rev: "canary", want: "ztunnel with revision canary"},
		{set: []string{"ztunnel.privileged=true"}, want: "privileged"},
		{set: []string{"profile=nope"}, want: "unknown profile nope"},
		{set: []string{"pilot.replicas=2"}, want: "replicas"},
		{set: []string{"gateway.enabled=true"}, want: "gateway"},
		{set: []string{"gateways.ingress.serviceType=Bogus"}, want: "serviceType"},
		{set: []string{"revision=Bad_Name"}, want: "revision"},
		{set: []string{"revision=a"}, rev: "b", want: "disagree"},
		{set: []string{"novalue"}, want: "--set novalue"},
	} {
		_, err := Render(RenderOptions{Set: c.set, Revision: c.rev})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v --revision %q: %v, want an error with %q", c.set, c.rev, err, c.want)
		}
	}
}

// TestRenderRevisionMeshConfig: a revision's meshConfig goes to the
// ConfigMap that revision's control plane reads (istio-<rev>, as Istio's
// chart; kubesource.MeshConfigMapName), the default's to istio.
func TestRenderRevisionMeshConfig(t *testing.T) {
	for _, rev := range []string{"", "canary"} {
		m, err := Render(RenderOptions{Set: []string{"profile=minimal", "meshConfig.accessLogFile=/dev/stdout"}, Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		cm := find(t, m, "ConfigMap", kubesource.MeshConfigMapName(rev))
		mesh, _, _ := unstructured.NestedString(cm.Object, "data", "mesh")
		if !strings.Contains(mesh, "accessLogFile: /dev/stdout") {
			t.Errorf("revision %q: ConfigMap %s mesh %q lacks the meshConfig value", rev, cm.GetName(), mesh)
		}
		for _, o := range m.Objects {
			if o.GetKind() == "ConfigMap" && o.GetName() != cm.GetName() {
				t.Errorf("revision %q: another ConfigMap %s rendered", rev, o.GetName())
			}
		}
	}
}

// TestRenderedWebhookIsInjectors: the chart's MutatingWebhookConfiguration
// is the one sluice control would create (pkg/kube/inject.Webhooks) and
// whose caBundle it patches: same name, webhooks, selectors, service.
func TestRenderedWebhookIsInjectors(t *testing.T) {
	for _, c := range []struct{ rev, ns string }{{"", "istio-system"}, {"canary", "istio-system"}, {"", "mesh"}} {
		m, err := Render(RenderOptions{Set: []string{"profile=minimal"}, Revision: c.rev, Namespace: c.ns})
		if err != nil {
			t.Fatal(err)
		}
		opts := inject.WebhookOptions{Revision: c.rev, Namespace: c.ns}
		u := find(t, m, "MutatingWebhookConfiguration", opts.ConfigurationName())
		var got admissionregv1.MutatingWebhookConfiguration
		data, _ := json.Marshal(u.Object)
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if want := inject.Webhooks(opts); !reflect.DeepEqual(got.Webhooks, want) {
			g, _ := json.MarshalIndent(got.Webhooks, "", " ")
			w, _ := json.MarshalIndent(want, "", " ")
			t.Errorf("rev %q ns %s: chart webhooks\n%s\nwant (inject.Webhooks)\n%s", c.rev, c.ns, g, w)
		}
		svc := find(t, m, "Service", opts.ServiceName())
		if svc.GetNamespace() != c.ns {
			t.Errorf("Service %s in %s", svc.GetName(), svc.GetNamespace())
		}
	}
}

// TestPruneKindsCoverChart: uninstall looks for every kind install makes.
func TestPruneKindsCoverChart(t *testing.T) {
	var objs []*unstructured.Unstructured
	for _, p := range []string{"demo", "ambient"} {
		m, err := Render(RenderOptions{Set: []string{"profile=" + p}})
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, m.Objects...)
	}
	for _, k := range kinds(objs) {
		found := false
		for _, gvr := range PruneKinds {
			if strings.EqualFold(gvr.Resource, strings.ToLower(k)+"s") || (k == "ServiceAccount" && gvr.Resource == "serviceaccounts") {
				found = true
			}
		}
		if !found {
			t.Errorf("kind %s is rendered but uninstall does not prune it", k)
		}
	}
}

// TestRenderAmbient: the ambient profile is the control plane trusting
// the node proxies' service account, no gateway, and the DaemonSet
// ztunnel as Istio's ztunnel and istio-cni charts run theirs.
func TestRenderAmbient(t *testing.T) {
	m, err := Render(RenderOptions{Set: []string{"profile=ambient", "tag=1.2.3"}, Namespace: "mesh-system"})
	if err != nil {
		t.Fatal(err)
	}
	istiod := find(t, m, "Deployment", "istiod")
	cs, _, _ := unstructured.NestedSlice(istiod.Object, "spec", "template", "spec", "containers")
	if !slices.Contains(cs[0].(map[string]any)["args"].([]any), any("--trusted-node-accounts=mesh-system/ztunnel")) {
		t.Errorf("istiod args %v do not trust mesh-system/ztunnel", cs[0].(map[string]any)["args"])
	}
	ds := find(t, m, "DaemonSet", "ztunnel")
	if ds.GetNamespace() != "mesh-system" {
		t.Errorf("ztunnel in %q", ds.GetNamespace())
	}
	spec, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	if spec["serviceAccountName"] != "ztunnel" || spec["hostPID"] != true {
		t.Errorf("ztunnel pod: serviceAccountName %v, hostPID %v", spec["serviceAccountName"], spec["hostPID"])
	}
	c := spec["containers"].([]any)[0].(map[string]any)
	for _, want := range []string{"--type=ztunnel", "--node=$(NODE_NAME)", "--xds-address=istiod.mesh-system.svc:15012",
		"--token-file=/var/run/secrets/tokens/istio-token", "--ca-root-file=/var/run/secrets/istio/root-cert.pem"} {
		if !slices.Contains(c["args"].([]any), any(want)) {
			t.Errorf("ztunnel args %v lack %s", c["args"], want)
		}
	}
	if c["image"] != "ghcr.io/sluice-mesh/sluice:1.2.3" {
		t.Errorf("ztunnel image %v", c["image"])
	}
	caps, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "add")
	if !slices.Equal(caps, []string{"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "SYS_PTRACE"}) {
		t.Errorf("ztunnel capabilities %v", caps)
	}
	y, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"audience: istio-ca", "fieldPath: spec.nodeName", "path: /var/run/netns", "mountPath: /var/run/netns"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("ztunnel pod spec lacks %q:\n%s", want, y)
		}
	}
	role := find(t, m, "ClusterRole", "ztunnel-mesh-system")
	rules, _ := yaml.Marshal(role.Object["rules"])
	for _, want := range []string{"- pods\n  - namespaces", "- pods/status", "- events", "- patch", "- create"} {
		if !strings.Contains(string(rules), want) {
			t.Errorf("ztunnel ClusterRole rules lack %q:\n%s", want, rules)
		}
	}
	find(t, m, "ClusterRoleBinding", "ztunnel-mesh-system")
	find(t, m, "ServiceAccount", "ztunnel")
}

// TestAmbientRoleCoversNodeAgent: the chart's ClusterRole for the node
// proxy grants every verb the node agent uses (nodeagent.ClusterRoleRules,
// with which the e2e runs it).
func TestAmbientRoleCoversNodeAgent(t *testing.T) {
	m, err := Render(RenderOptions{Set: []string{"profile=ambient"}})
	if err != nil {
		t.Fatal(err)
	}
	role := find(t, m, "ClusterRole", "ztunnel-istio-system")
	var rules []rbacv1.PolicyRule
	raw, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range raw {
		var pr rbacv1.PolicyRule
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.(map[string]any), &pr); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, pr)
	}
	granted := func(group, resource, verb string) bool {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, need := range nodeagent.ClusterRoleRules {
		for _, g := range need.APIGroups {
			for _, res := range need.Resources {
				for _, v := range need.Verbs {
					if !granted(g, res, v) {
						t.Errorf("the chart's ztunnel ClusterRole does not grant %s %s/%s", v, g, res)
					}
				}
			}
		}
	}
}
