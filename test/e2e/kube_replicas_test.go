package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestTwoControlPlaneReplicas (issue 11, point 8): two `sluice control`
// replicas on one API server share the CA (istio-ca-secret) and both
// serve xDS; one holds the status Lease and writes Gateway API status;
// when it stops, the other takes the Lease and writes the status of
// what comes next.
func TestTwoControlPlaneReplicas(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.InstallGatewayAPICRDs(t)
	cluster.CreateNamespace(t, "istio-system", nil)
	a := cluster.NewApplier(t)

	m := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig})
	bState := filepath.Join(t.TempDir(), "state")
	bXDS, bHTTP := testenv.FreeAddr(), testenv.FreeAddr()
	b := testenv.Start(t, "control-b", "control", "--kubeconfig", cluster.Kubeconfig, "--xds-address", bXDS,
		"--http-address", bHTTP, "--state-dir", bState)
	if err := testenv.Eventually(func() error { return httpOK("http://" + bHTTP + "/ready") }, 30*time.Second); err != nil {
		t.Fatalf("replica b not ready: %v\n%s", err, b.Tail(40))
	}

	// One root: a workload certificate from either replica verifies at the other's peers.
	rootA, rootB := readFile(t, filepath.Join(m.StateDir, "root-cert.pem")), readFile(t, filepath.Join(bState, "root-cert.pem"))
	if rootA != rootB {
		t.Fatal("the replicas made different roots instead of sharing istio-ca-secret")
	}

	// Both serve xDS: a sidecar on replica b gets its config there.
	testenv.Start(t, "proxy-on-b", "proxy", "--name", "on-b", "--namespace", "default", "--admin-address", testenv.FreeAddr(),
		"--xds-address", bXDS, "--token-file", filepath.Join(bState, "bootstrap-token"),
		"--ca-root-file", filepath.Join(bState, "root-cert.pem"), "--xds-tls=false")
	if err := testenv.Eventually(func() error { return proxyListed("http://"+bHTTP, "on-b") }, 30*time.Second); err != nil {
		t.Fatalf("replica b serves no xDS: %v\n%s", err, b.Tail(40))
	}

	holder := func() string {
		l, err := cluster.Client(t).CoordinationV1().Leases("istio-system").Get(context.Background(), "sluice-gateway-status-leader", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	pidA, pidB := "-"+strconv.Itoa(m.Control.PID()), "-"+strconv.Itoa(b.PID())
	var first string
	if err := testenv.Eventually(func() error {
		if first = holder(); !strings.HasSuffix(first, pidA) && !strings.HasSuffix(first, pidB) {
			return fmt.Errorf("status Lease held by %q, neither replica", first)
		}
		return nil
	}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a.Apply(t, gatewayYAML("before"))
	waitGatewayAccepted(t, a, "before")

	// The leader stops: the other replica takes the Lease and writes on.
	if strings.HasSuffix(first, pidA) {
		m.Control.Stop()
	} else {
		b.Stop()
	}
	if err := testenv.Eventually(func() error {
		if h := holder(); h == first || h == "" {
			return fmt.Errorf("status Lease still held by %q", h)
		}
		return nil
	}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a.Apply(t, gatewayYAML("after"))
	waitGatewayAccepted(t, a, "after")
}

func gatewayYAML(name string) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %s, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
`, name)
}

func waitGatewayAccepted(t *testing.T, a *kubetest.Applier, name string) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	if err := testenv.Eventually(func() error {
		gw, err := a.Dynamic().Resource(gvr).Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(gw.Object, "status", "conditions")
		for _, c := range conds {
			if c := c.(map[string]any); c["type"] == "Accepted" && c["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("Gateway %s status: %v", name, gw.Object["status"])
	}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

func httpOK(url string) error {
	r, err := http.Get(url)
	if err != nil {
		return err
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, r.Status)
	}
	return nil
}

// proxyListed reports whether a control plane's /debug/status lists a
// connected proxy of that name.
func proxyListed(base, name string) error {
	r, err := http.Get(base + "/debug/status")
	if err != nil {
		return err
	}
	defer r.Body.Close()
	var st testenv.ControlStatus
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		return err
	}
	for _, p := range st.Proxies {
		if p.Name == name {
			return nil
		}
	}
	return fmt.Errorf("proxy %s not connected", name)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
