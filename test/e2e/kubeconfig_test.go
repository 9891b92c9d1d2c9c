package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	cluster.InstallGatewayAPICRDs(t)
	// The control plane's namespace: its CA Secret and Leases live there.
	cluster.CreateNamespace(t, "istio-system", nil)
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
	checkKubeIdentity(t, cluster, m)
	checkGatewayStatus(t, cluster, dyn, m)
	checkGatewayDeployment(t, cluster, dyn, m)
	checkGatewayPod(t, cluster, m)
	checkValidationMessages(t, dyn, m)
}

// checkGatewayStatus: the control plane creates Istio's default
// GatewayClasses and writes the status of a Gateway and an HTTPRoute
// applied through the API (the leader of its status Lease does).
func checkGatewayStatus(t *testing.T, cluster *kubetest.Cluster, dyn dynamic.Interface, m *testenv.Mesh) {
	t.Helper()
	ctx := context.Background()
	gvr := func(res string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: res}
	}
	for _, y := range []string{`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
`, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: missing, port: 80}]}]
`} {
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(y), &obj); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: obj}
		res := map[string]string{"Gateway": "gateways", "HTTPRoute": "httproutes"}[u.GetKind()]
		if _, err := dyn.Resource(gvr(res)).Namespace("default").Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", u.GetKind(), err)
		}
	}
	accepted := func(u *unstructured.Unstructured, path ...string) bool {
		conds, _, _ := unstructured.NestedSlice(u.Object, path...)
		for _, c := range conds {
			if c := c.(map[string]any); c["type"] == "Accepted" && c["status"] == "True" {
				return true
			}
		}
		return false
	}
	m.WaitConverged(func() error {
		if _, err := dyn.Resource(gvr("gatewayclasses")).Get(ctx, "istio", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("default GatewayClass istio: %w", err)
		}
		gw, err := dyn.Resource(gvr("gateways")).Namespace("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || !accepted(gw, "status", "conditions") {
			return fmt.Errorf("Gateway status not written: %v %v", err, gw.Object["status"])
		}
		r, err := dyn.Resource(gvr("httproutes")).Namespace("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		parents, _, _ := unstructured.NestedSlice(r.Object, "status", "parents")
		if len(parents) != 1 || !accepted(&unstructured.Unstructured{Object: parents[0].(map[string]any)}, "conditions") {
			return fmt.Errorf("HTTPRoute status: %v", r.Object["status"])
		}
		return nil
	}, convergeTimeout)
}

// checkKubeIdentity: on a cluster the CA keeps its root in
// istio-system/istio-ca-secret, and a proxy proves its identity with its
// pod's projected token (audience istio-ca), checked by TokenReview; a
// token for another audience is refused.
func checkKubeIdentity(t *testing.T, cluster *kubetest.Cluster, m *testenv.Mesh) {
	t.Helper()
	sec, err := cluster.Client(t).CoreV1().Secrets("istio-system").Get(context.Background(), "istio-ca-secret", metav1.GetOptions{})
	if err != nil || len(sec.Data["ca-cert.pem"]) == 0 {
		t.Fatalf("istio-ca-secret: %v", err)
	}
	cluster.CreateNamespace(t, "shop", nil)
	proxy := func(name string, audiences []string) {
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(cluster.ServiceAccountToken(t, "shop", "cart", audiences)), 0o600); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"proxy", "--name", name, "--namespace", "shop", "--service-account", "cart",
			"--admin-address", testenv.FreeAddr()}, m.ProxyControlArgs()...)
		args = append(args, "--token-file", tokenFile) // the last --token-file wins
		testenv.Start(t, name, args...)
	}
	connected := func(name string) bool {
		st, err := m.TryStatus()
		if err != nil {
			return false
		}
		for _, p := range st.Proxies {
			if p.Name == name && p.Namespace == "shop" {
				return true
			}
		}
		return false
	}
	proxy("cart-1", []string{"istio-ca"})
	proxy("cart-other-audience", []string{"vault"})
	m.WaitConverged(func() error {
		if !connected("cart-1") {
			return errors.New("the proxy with its projected token is not connected")
		}
		return nil
	}, convergeTimeout)
	if connected("cart-other-audience") {
		t.Error("a proxy whose token is for another audience was admitted")
	}
}
