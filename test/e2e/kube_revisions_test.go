package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Two control planes on one API server, `--revision r1` and the default
// revision: a VirtualService labelled istio.io/rev=r1 steers r1's proxies
// only (an unlabelled ServiceEntry is both's, as istiod's
// LabelsInRevision); each provisions the Gateways of its revision (a
// Gateway labelled istio.io/rev=r1 gets r1's Deployment, an unlabelled one
// the default's), each under its own per-revision deployment Lease.
func TestKubeRevisions(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cluster.InstallIstioCRDs(t)
	cluster.InstallGatewayAPICRDs(t)
	cluster.CreateNamespace(t, "istio-system", nil)
	a := cluster.NewApplier(t)
	portA, portB := plainServer(t, "a"), plainServer(t, "b")
	a.Apply(t, staticServiceEntry("api", "api.example.com", portA))
	a.Apply(t, staticServiceEntry("api-v2", "v2.example.com", portB))
	a.Apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default, labels: {istio.io/rev: r1}}
spec:
  hosts: [api.example.com]
  http: [{route: [{destination: {host: v2.example.com}}]}]
`)
	r1 := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig, ControlArgs: []string{"--revision", "r1"}})
	def := testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: cluster.Kubeconfig})
	reaches := func(c *testenv.Client, want string) func() error {
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
	r1.WaitConverged(reaches(r1.AddClient(testenv.ClientOptions{}), "backend b"), convergeTimeout)
	def.WaitConverged(reaches(def.AddClient(testenv.ClientOptions{}), "backend a"), convergeTimeout)

	a.Apply(t, gatewayYAML("plain"))
	a.Apply(t, strings.Replace(gatewayYAML("canary"), "namespace: default}", "namespace: default, labels: {istio.io/rev: r1}}", 1))
	kc := cluster.Client(t)
	revOf := func(name string) error {
		return testenv.Eventually(func() error {
			d, err := kc.AppsV1().Deployments("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			want := map[string]string{"plain-istio": "default", "canary-istio": "r1"}[name]
			if got := d.Spec.Template.Annotations["istio.io/rev"]; got != want {
				return fmt.Errorf("Deployment %s provisioned by revision %q, want %q", name, got, want)
			}
			return nil
		}, convergeTimeout)
	}
	for _, name := range []string{"plain-istio", "canary-istio"} {
		if err := revOf(name); err != nil {
			t.Fatal(err)
		}
	}
	for _, lease := range []string{"sluice-gateway-deployment-r1", "sluice-gateway-deployment-default"} {
		if _, err := kc.CoordinationV1().Leases("istio-system").Get(context.Background(), lease, metav1.GetOptions{}); err != nil {
			t.Errorf("Lease %s: %v", lease, err)
		}
	}
}
