package kubesource_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/config/kubesource"
)

// fixture is a cluster with Istio's and Gateway API's CRDs and a running
// Source.
type fixture struct {
	t       *testing.T
	cluster *kubetest.Cluster
	dyn     dynamic.Interface
	src     *kubesource.Source
	changed chan struct{}
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, true)
}

// newFixtureWith installs Gateway API's CRDs before the source starts
// only when gatewayAPI is set.
func newFixtureWith(t *testing.T, gatewayAPI bool) *fixture {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallIstioCRDs(t)
	if gatewayAPI {
		c.InstallGatewayAPICRDs(t)
	}
	c.CreateNamespace(t, "shop", nil)
	c.CreateNamespace(t, "istio-system", nil)
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	src, err := kubesource.New(kubesource.Options{RESTConfig: c.RESTConfig(), Logf: t.Logf})
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

// gvr maps the test objects' apiVersion/kind to their resources.
func gvr(u *unstructured.Unstructured) schema.GroupVersionResource {
	gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
	res := strings.ToLower(u.GetKind()) + "s"
	switch u.GetKind() {
	case "ServiceEntry":
		res = "serviceentries"
	case "ConfigMap":
		res = "configmaps"
	case "Secret":
		res = "secrets"
	}
	return gv.WithResource(res)
}

func object(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// apply creates the object, or updates it keeping its resourceVersion.
func (f *fixture) apply(y string) {
	f.t.Helper()
	u := object(f.t, y)
	rc := f.dyn.Resource(gvr(u)).Namespace(u.GetNamespace())
	old, err := rc.Get(context.Background(), u.GetName(), metav1.GetOptions{})
	if err == nil {
		u.SetResourceVersion(old.GetResourceVersion())
		_, err = rc.Update(context.Background(), u, metav1.UpdateOptions{})
	} else {
		_, err = rc.Create(context.Background(), u, metav1.CreateOptions{})
	}
	if err != nil {
		f.t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func (f *fixture) delete(y string) {
	f.t.Helper()
	u := object(f.t, y)
	if err := f.dyn.Resource(gvr(u)).Namespace(u.GetNamespace()).Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}); err != nil {
		f.t.Fatalf("delete %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// waitFor loads until check passes or timeout ends, and returns the
// snapshot that passed and how long it took.
func (f *fixture) waitFor(what string, timeout time.Duration, check func(filesource.Snapshot) error) (filesource.Snapshot, time.Duration) {
	f.t.Helper()
	start := time.Now()
	var last error
	for {
		snap, err := f.src.Load()
		if err != nil {
			f.t.Fatalf("Load: %v", err)
		}
		if last = check(snap); last == nil {
			return snap, time.Since(start)
		}
		if time.Since(start) > timeout {
			f.t.Fatalf("%s: not within %v: %v", what, timeout, last)
		}
		select {
		case <-f.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func find(snap filesource.Snapshot, kind config.Kind, ns, name string) *config.Resource {
	for _, r := range snap.Resources {
		if r.Kind == kind && r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

func has(kind config.Kind, ns, name string) func(filesource.Snapshot) error {
	return func(s filesource.Snapshot) error {
		if find(s, kind, ns, name) == nil {
			return fmt.Errorf("no %s %s/%s in %d resources", kind, ns, name, len(s.Resources))
		}
		return nil
	}
}

const (
	vsYAML = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
`
	drYAML = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
`
	gwYAML = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
`
	seYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
`
	routeYAML = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
`
)

// TestSource applies Istio and Gateway API objects through a real API
// server and follows them in Load: creation, update, an invalid update
// (reported with its name, last good kept), deletion, the MeshConfig
// ConfigMap, and an API server restart.
func TestSource(t *testing.T) {
	f := newFixture(t)
	first, err := f.src.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range []string{vsYAML, drYAML, gwYAML, seYAML, routeYAML} {
		f.apply(y)
	}
	snap, took := f.waitFor("five objects", time.Second, func(s filesource.Snapshot) error {
		for _, k := range []struct {
			kind config.Kind
			name string
		}{{config.KindVirtualService, "reviews"}, {config.KindDestinationRule, "reviews"}, {config.KindGateway, "web"},
			{config.KindServiceEntry, "ext"}, {config.KindHTTPRoute, "web"}} {
			if err := has(k.kind, "shop", k.name)(s); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("five objects in Load %v after their creation", took)
	if snap.Version <= first.Version {
		t.Errorf("Version %d after changes, was %d", snap.Version, first.Version)
	}
	if r := find(snap, config.KindVirtualService, "shop", "reviews"); r.Source.File != kubesource.SourceName || r.Created == 0 {
		t.Errorf("VirtualService source %q created %d, want %q and its creationTimestamp", r.Source, r.Created, kubesource.SourceName)
	}
	if len(snap.Errors) != 0 {
		t.Errorf("errors: %v", snap.Errors)
	}

	t.Run("update", func(t *testing.T) {
		f.apply(strings.Replace(seYAML, "api.example.com", "api2.example.com", 1))
		f.waitFor("updated ServiceEntry", time.Second, func(s filesource.Snapshot) error {
			if h := find(s, config.KindServiceEntry, "shop", "ext").Spec.(interface{ GetHosts() []string }).GetHosts(); len(h) != 1 || h[0] != "api2.example.com" {
				return fmt.Errorf("hosts %v", h)
			}
			return nil
		})
	})
	t.Run("invalid keeps last good", func(t *testing.T) {
		before := find(snap, config.KindVirtualService, "shop", "reviews")
		// The CRD's schema admits it; Istio's validation does not (a
		// route's weights must not be negative).
		f.apply(strings.Replace(vsYAML, "subset: v1}", "subset: v1}\n      weight: -5", 1))
		s, _ := f.waitFor("error", 2*time.Second, func(s filesource.Snapshot) error {
			if len(s.Errors) == 0 {
				return fmt.Errorf("no errors")
			}
			return nil
		})
		msg := s.Errors.Error()
		if !strings.Contains(msg, "kubernetes: VirtualService shop/reviews: spec.http[0]") {
			t.Errorf("error %q does not name the source, object and field", msg)
		}
		if got := find(s, config.KindVirtualService, "shop", "reviews"); got == nil || got != before {
			t.Errorf("last good VirtualService not kept: %v", got)
		}
		f.apply(vsYAML)
		f.waitFor("fixed", 2*time.Second, func(s filesource.Snapshot) error {
			if len(s.Errors) != 0 {
				return s.Errors
			}
			return nil
		})
	})
	t.Run("delete", func(t *testing.T) {
		f.delete(drYAML)
		f.waitFor("DestinationRule gone", time.Second, func(s filesource.Snapshot) error {
			if find(s, config.KindDestinationRule, "shop", "reviews") != nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
	})
	t.Run("mesh config", func(t *testing.T) {
		cm := `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    trustDomain: example.org
`
		f.apply(cm)
		f.waitFor("MeshConfig", 2*time.Second, func(s filesource.Snapshot) error {
			if s.Mesh.GetTrustDomain() != "example.org" {
				return fmt.Errorf("mesh %v", s.Mesh)
			}
			return nil
		})
		f.apply(strings.Replace(cm, "trustDomain: example.org", "noSuchField: 1", 1))
		s, _ := f.waitFor("MeshConfig error", 2*time.Second, func(s filesource.Snapshot) error {
			if !strings.Contains(s.Errors.Error(), "ConfigMap istio-system/istio key mesh") {
				return fmt.Errorf("errors %v", s.Errors)
			}
			return nil
		})
		if s.Mesh.GetTrustDomain() != "example.org" {
			t.Errorf("last good MeshConfig not kept: %v", s.Mesh)
		}
	})
	t.Run("no-op change makes no new snapshot", func(t *testing.T) {
		before, _ := f.src.Load()
		// A finalizer is not config: the VirtualService configures the
		// mesh as before. The marker comes after it on the same watch.
		f.apply(strings.Replace(vsYAML, "metadata: {name: reviews, namespace: shop}",
			"metadata: {name: reviews, namespace: shop, finalizers: [example.com/keep]}", 1))
		f.apply(strings.Replace(vsYAML, "name: reviews,", "name: marker,", 1))
		after, _ := f.waitFor("marker", 2*time.Second, has(config.KindVirtualService, "shop", "marker"))
		if after.Version != before.Version+1 {
			t.Errorf("version %d -> %d: the finalizer made a snapshot of its own", before.Version, after.Version)
		}
	})
	t.Run("secrets", func(t *testing.T) {
		f.apply(`
apiVersion: v1
kind: Secret
metadata: {name: web-cert, namespace: shop}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
`)
		// A service account token can hold no credential: not watched,
		// as istiod's SecretsFieldSelector.
		f.apply(`
apiVersion: v1
kind: Secret
metadata: {name: sa-token, namespace: shop, annotations: {kubernetes.io/service-account.name: default}}
type: kubernetes.io/service-account-token
`)
		f.apply(strings.Replace(seYAML, "name: ext", "name: marker", 1))
		s, _ := f.waitFor("TLS secret", 2*time.Second, func(s filesource.Snapshot) error {
			if err := has(config.KindSecret, "shop", "web-cert")(s); err != nil {
				return err
			}
			return has(config.KindServiceEntry, "shop", "marker")(s)
		})
		if find(s, config.KindSecret, "shop", "sa-token") != nil {
			t.Error("a service account token Secret is in the snapshot")
		}
	})
	t.Run("API server restart", func(t *testing.T) {
		before, _ := f.src.Load()
		f.cluster.RestartAPIServer(t)
		after, _ := f.src.Load()
		if len(after.Resources) != len(before.Resources) {
			t.Errorf("after restart %d resources, before %d", len(after.Resources), len(before.Resources))
		}
		// The watches resume: a new object arrives.
		f.apply(strings.Replace(seYAML, "name: ext", "name: ext2", 1))
		_, took := f.waitFor("ServiceEntry after restart", 30*time.Second, has(config.KindServiceEntry, "shop", "ext2"))
		t.Logf("new object seen in Load %v after its creation, after the restart", took)
		if s, _ := f.src.Load(); find(s, config.KindVirtualService, "shop", "reviews") == nil {
			t.Errorf("VirtualService lost after restart")
		}
	})
}

// TestCRDInstalledLater installs Gateway API's CRDs after the source
// started: their kinds are watched from then on, as istiod does.
func TestCRDInstalledLater(t *testing.T) {
	f := newFixtureWith(t, false)
	if _, err := f.src.Load(); err != nil {
		t.Fatal(err)
	}
	f.cluster.InstallGatewayAPICRDs(t)
	f.apply(routeYAML)
	_, took := f.waitFor("HTTPRoute", 20*time.Second, has(config.KindHTTPRoute, "shop", "web"))
	t.Logf("HTTPRoute seen %v after its creation", took)
}

// TestUnreachable: an API server that never answers is an error from
// Load once SyncTimeout has passed, not a hang.
func TestUnreachable(t *testing.T) {
	src, err := kubesource.New(kubesource.Options{RESTConfig: &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second},
		SyncTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := src.Load(); err == nil || !strings.Contains(err.Error(), "kubesource") {
		t.Fatalf("Load: %v, want an error", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Load took %v", took)
	}
}
