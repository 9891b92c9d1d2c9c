package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// plainServer is an HTTP backend on loopback answering with its name.
func plainServer(t *testing.T, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s host=%s", name, r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func staticServiceEntry(name, host string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: default}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, name, host, port)
}

// TestKubeconfigConfigSource runs `sluice control --kubeconfig` against a
// real API server and a real client sidecar: ServiceEntries and a
// VirtualService applied through the API steer the proxy's routing, and
// deleting the VirtualService steers it back.
func TestKubeconfigConfigSource(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.InstallIstioCRDs(t)
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	apply := func(y string) {
		t.Helper()
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(y), &m); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		res := map[string]string{"ServiceEntry": "serviceentries", "VirtualService": "virtualservices"}[u.GetKind()]
		if _, err := dyn.Resource(gv.WithResource(res)).Namespace(u.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	portA, portB := plainServer(t, "a"), plainServer(t, "b")
	apply(staticServiceEntry("api", "api.example.com", portA))
	apply(staticServiceEntry("api-v2", "v2.example.com", portB))

	m := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig})
	c := m.AddClient(testenv.ClientOptions{})
	reaches := func(want string) func() error {
		return func() error {
			r, err := c.Get("api.example.com", "/", nil)
			if err != nil {
				return err
			}
			if r.Status != 200 || !strings.HasPrefix(string(r.Body), want) {
				return fmt.Errorf("want %q, got %s", want, r)
			}
			return nil
		}
	}
	m.WaitConverged(reaches("backend a host=api.example.com"), convergeTimeout)

	apply(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  http:
  - route:
    - destination: {host: v2.example.com}
`)
	m.WaitConverged(reaches("backend b"), convergeTimeout)

	vs := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	if err := dyn.Resource(vs).Namespace("default").Delete(context.Background(), "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m.WaitConverged(reaches("backend a"), convergeTimeout)
	if err := m.CheckNoNACK(); err != nil {
		t.Error(err)
	}
}
