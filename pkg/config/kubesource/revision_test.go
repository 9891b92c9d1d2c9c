package kubesource_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/config/kubesource"
)

// revisionSource runs a Source of revision rev on c.
func revisionSource(t *testing.T, c *kubetest.Cluster, rev string) *fixture {
	src, err := kubesource.New(kubesource.Options{RESTConfig: c.RESTConfig(), Revision: rev, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cluster: c, dyn: dyn, src: src, changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, f.changed) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// serviceEntry is a ServiceEntry in shop with the given istio.io/rev
// label ("" none) and, when bad, a value Istio's validation rejects.
func serviceEntry(name, rev string, bad bool) string {
	labels := "{}"
	if rev != "" {
		labels = fmt.Sprintf("{istio.io/rev: %s}", rev)
	}
	res := "DNS"
	if bad {
		res = "NONE\n  addresses: [not-an-ip]" // rejected by Istio's validation
	}
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: shop, labels: %s}
spec:
  hosts: [%s.example.com]
  location: MESH_EXTERNAL
  resolution: %s
  ports: [{number: 80, name: http, protocol: HTTP}]
`, name, labels, name, res)
}

// names lists the ServiceEntries of a snapshot and the objects its errors
// name.
func names(s filesource.Snapshot) (entries []string, errs string) {
	for _, r := range s.Resources {
		if r.Kind == config.KindServiceEntry {
			entries = append(entries, r.Name)
		}
	}
	return entries, s.Errors.Error()
}

// Two control planes, revisions r1 and default, read one API server as
// istiod's crdclient does (LabelsInRevision): an object labelled
// istio.io/rev=r1 is r1's only, =default the default's only, an
// unlabelled one both's; another revision's invalid object is not
// reported; relabelling moves an object from one to the other.
func TestRevisions(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallIstioCRDs(t)
	c.CreateNamespace(t, "shop", nil)
	r1, def := revisionSource(t, c, "r1"), revisionSource(t, c, "default")
	def.apply(serviceEntry("global", "", false))
	def.apply(serviceEntry("mine-r1", "r1", false))
	def.apply(serviceEntry("mine-default", "default", false))
	def.apply(serviceEntry("bad-r1", "r1", true))

	want := func(entries []string, errIn string, errOut string) func(filesource.Snapshot) error {
		return func(s filesource.Snapshot) error {
			got, errs := names(s)
			if strings.Join(got, ",") != strings.Join(entries, ",") {
				return fmt.Errorf("ServiceEntries %v, want %v", got, entries)
			}
			if errIn != "" && !strings.Contains(errs, errIn) {
				return fmt.Errorf("errors %q lack %q", errs, errIn)
			}
			if errOut != "" && strings.Contains(errs, errOut) {
				return fmt.Errorf("errors %q name %q", errs, errOut)
			}
			return nil
		}
	}
	r1.waitFor("r1's objects", 10*time.Second, want([]string{"global", "mine-r1"}, "shop/bad-r1", ""))
	def.waitFor("default's objects", 10*time.Second, want([]string{"global", "mine-default"}, "", "bad-r1"))

	// Relabel: r1's entry becomes the default revision's.
	def.apply(serviceEntry("mine-r1", "default", false))
	r1.waitFor("r1 after relabel", 10*time.Second, want([]string{"global"}, "shop/bad-r1", ""))
	def.waitFor("default after relabel", 10*time.Second, want([]string{"global", "mine-default", "mine-r1"}, "", "bad-r1"))

	// Each revision's MeshConfig is its own ConfigMap: istio for the
	// default, istio-r1 for r1 (istiod's getMeshConfigMapName).
	c.CreateNamespace(t, "istio-system", nil)
	meshCM := func(name, td string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: istio-system}\ndata:\n  mesh: 'trustDomain: %s'\n", name, td)
	}
	def.apply(meshCM("istio", "default.example"))
	def.apply(meshCM("istio-r1", "r1.example"))
	trustDomain := func(td string) func(filesource.Snapshot) error {
		return func(s filesource.Snapshot) error {
			if got := s.Mesh.GetTrustDomain(); got != td {
				return fmt.Errorf("trust domain %q, want %q", got, td)
			}
			return nil
		}
	}
	r1.waitFor("r1's MeshConfig", 10*time.Second, trustDomain("r1.example"))
	def.waitFor("default's MeshConfig", 10*time.Second, trustDomain("default.example"))
	if got := kubesource.MeshConfigMapName(""); got != "istio" {
		t.Errorf("MeshConfigMapName(\"\") = %q", got)
	}
}
