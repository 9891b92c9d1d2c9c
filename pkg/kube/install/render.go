// Package install is `sluice install`, `manifest generate`, `uninstall`
// and `tag`, as istioctl's: the chart manifests/charts/sluice (embedded)
// rendered with Helm's own engine, applied with server-side apply, waited
// for, and pruned by the labels every object carries.
package install

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/manifests"
	"github.com/sluice-mesh/sluice/pkg/version"
)

// Labels every installed object carries (the chart's sluice.labels and the
// generated CRDs): uninstall prunes by them, as istioctl by
// install.operator.istio.io/owning-resource.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "sluice"
	LabelRevision  = "sluice.io/revision"
	// FieldManager is the server-side apply field manager.
	FieldManager = "sluice-installer"
	// DefaultNamespace is the control plane's (Istio's istio-system).
	DefaultNamespace = "istio-system"
	// DefaultHub is where the sluice image is published.
	DefaultHub = "ghcr.io/sluice-mesh"
	// ReleaseName is the Helm release name the CLI renders with.
	ReleaseName = "sluice"
)

// Profiles are the values of profile sluice renders (Istio's).
var Profiles = []string{"default", "demo", "minimal", "empty", "ambient"}

// RenderOptions say what to render.
type RenderOptions struct {
	// Chart is the chart's files (default: the embedded manifests.Chart()).
	Chart fs.FS
	// Set are --set flags (Helm's strvals syntax: a.b=c,d=e), applied in order.
	Set []string
	// Namespace is the release namespace (default DefaultNamespace).
	Namespace string
	// Revision, if set, is the value revision (as --set revision=R).
	Revision string
	// DefaultTag is the image tag when --set tag= is not given; the CLI
	// passes its own version (the chart's default is its appVersion).
	DefaultTag string
	// DefaultProfile when --set profile= is not given ("" : the chart's).
	DefaultProfile string
}

// Manifest is a rendered chart: its objects, in apply order, and the
// values it was rendered with.
type Manifest struct {
	Objects  []*unstructured.Unstructured
	Revision string // "" for the default revision
	Values   map[string]any
}

// LoadChart reads a chart folder (an fs.FS rooted at Chart.yaml) with
// Helm's in-memory loader.
func LoadChart(fsys fs.FS) (*chartv2.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: p, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	return ch, nil
}

// Values are the user values of o: --set in order over the revision,
// profile and tag defaults.
func (o RenderOptions) Values() (map[string]any, error) {
	vals := map[string]any{}
	if o.DefaultProfile != "" {
		vals["profile"] = o.DefaultProfile
	}
	if o.DefaultTag != "" {
		vals["tag"] = o.DefaultTag
	}
	if o.Revision != "" {
		vals["revision"] = o.Revision
	}
	for _, s := range o.Set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	if o.Revision != "" && vals["revision"] != o.Revision {
		return nil, fmt.Errorf("--revision %s and --set revision=%v disagree", o.Revision, vals["revision"])
	}
	return vals, nil
}

// Render renders the chart with Helm's engine, as `helm template` does
// (values checked against values.schema.json), and decodes its objects.
func Render(o RenderOptions) (*Manifest, error) {
	if o.Chart == nil {
		o.Chart = manifests.Chart()
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	ch, err := LoadChart(o.Chart)
	if err != nil {
		return nil, err
	}
	vals, err := o.Values()
	if err != nil {
		return nil, err
	}
	docs, err := RenderChart(ch, vals, o.Namespace)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(docs)
	if err != nil {
		return nil, err
	}
	rev, _ := vals["revision"].(string)
	SortForApply(objs)
	return &Manifest{Objects: objs, Revision: rev, Values: vals}, nil
}

// RenderChart is Helm's: render values over the chart's, schema
// validated, through engine.Render; the templates' outputs in name order.
func RenderChart(ch *chartv2.Chart, vals map[string]any, namespace string) ([]string, error) {
	rv, err := util.ToRenderValuesWithSchemaValidation(ch, vals,
		common.ReleaseOptions{Name: ReleaseName, Namespace: namespace, Revision: 1, IsInstall: true}, nil, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", ch.Name(), err)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		if path.Ext(n) == ".yaml" || path.Ext(n) == ".yml" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	docs := make([]string, 0, len(names))
	for _, n := range names {
		docs = append(docs, out[n])
	}
	return docs, nil
}

// Decode splits rendered templates into objects (empty documents skipped).
func Decode(rendered []string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, r := range rendered {
		for i, doc := range splitDocs(r) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			m := map[string]any{}
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				return nil, fmt.Errorf("rendered document %d: %w", i, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			if u.GetKind() == "" || u.GetName() == "" {
				return nil, fmt.Errorf("rendered document %d: an object without kind or name", i)
			}
			objs = append(objs, u)
		}
	}
	return objs, nil
}

func splitDocs(s string) []string {
	var docs []string
	var cur bytes.Buffer
	for line := range strings.Lines(s) {
		if strings.TrimRight(line, " \r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

// applyOrder is the order kinds are applied in (Helm's InstallOrder, shortened).
var applyOrder = []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ConfigMap",
	"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment", "DaemonSet", "MutatingWebhookConfiguration"}

func kindRank(kind string) int {
	for i, k := range applyOrder {
		if k == kind {
			return i
		}
	}
	return len(applyOrder)
}

// SortForApply orders objects by kind (applyOrder), then namespace and name.
func SortForApply(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if ra, rb := kindRank(a.GetKind()), kindRank(b.GetKind()); ra != rb {
			return ra < rb
		}
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}

// YAML is the manifest as one multi-document YAML stream.
func (m *Manifest) YAML() ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range m.Objects {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	return buf.Bytes(), nil
}

// ImageTag is the tag of this build's image: its version, with what an
// image tag cannot hold ("+") replaced.
func ImageTag() string {
	return strings.NewReplacer("+", "-").Replace(version.Get())
}
