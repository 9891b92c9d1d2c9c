package e2e

import (
	"context"
	"fmt"
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

// checkValidationMessages: a VirtualService routing to a host nothing
// defines gets Istio's IST0101 in status.validationMessages (as istiod's
// in-cluster analysis writes it); defining the host clears them.
func checkValidationMessages(t *testing.T, dyn dynamic.Interface, m *testenv.Mesh) {
	t.Helper()
	ctx := context.Background()
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	seGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	create := func(gvr schema.GroupVersionResource, y string) {
		t.Helper()
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(y), &obj); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(gvr).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(vsGVR, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: lost, namespace: default}
spec:
  hosts: [lost.example.com]
  http: [{route: [{destination: {host: nowhere.example.com}}]}]
`)
	messages := func() ([]any, error) {
		u, err := dyn.Resource(vsGVR).Namespace("default").Get(ctx, "lost", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		msgs, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		return msgs, nil
	}
	m.WaitConverged(func() error {
		msgs, err := messages()
		if err != nil {
			return err
		}
		want := `[map[documentationUrl:https://istio.io/latest/docs/reference/config/analysis/ist0101/ level:ERROR type:map[code:IST0101]]]`
		if got := fmt.Sprint(msgs); got != want {
			return fmt.Errorf("validationMessages %s, want %s", got, want)
		}
		return nil
	}, convergeTimeout)
	create(seGVR, staticServiceEntry("nowhere", "nowhere.example.com", 9))
	m.WaitConverged(func() error {
		msgs, err := messages()
		if err != nil {
			return err
		}
		if len(msgs) != 0 {
			return fmt.Errorf("validationMessages not cleared: %v", msgs)
		}
		return nil
	}, convergeTimeout)
}

// checkGatewayDeployment: the Gateway web of class istio (made by
// checkGatewayStatus) gets its Deployment of sluice proxy --type router,
// Service and ServiceAccount, owned by it; with no pod behind the Service
// its Programmed condition says so, as istiod's.
func checkGatewayDeployment(t *testing.T, cluster *kubetest.Cluster, dyn dynamic.Interface, m *testenv.Mesh) {
	t.Helper()
	ctx := context.Background()
	kc := cluster.Client(t)
	m.WaitConverged(func() error {
		d, err := kc.AppsV1().Deployments("default").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if refs := d.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Gateway" || refs[0].Name != "web" {
			return fmt.Errorf("owner references %+v", refs)
		}
		if args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); !strings.HasPrefix(args, "proxy --type router") {
			return fmt.Errorf("args %s", args)
		}
		if _, err := kc.CoreV1().Services("default").Get(ctx, "web-istio", metav1.GetOptions{}); err != nil {
			return err
		}
		if _, err := kc.CoreV1().ServiceAccounts("default").Get(ctx, "web-istio", metav1.GetOptions{}); err != nil {
			return err
		}
		gw, err := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}).
			Namespace("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(gw.Object, "status", "conditions")
		for _, c := range conds {
			c := c.(map[string]any)
			if c["type"] == "Programmed" {
				if c["status"] != "False" || c["reason"] != "AddressNotAssigned" ||
					!strings.Contains(fmt.Sprint(c["message"]), `no instances found for hostname "web-istio.default.svc.cluster.local"`) {
					return fmt.Errorf("Programmed %v", c)
				}
				return nil
			}
		}
		return fmt.Errorf("no Programmed condition: %v", conds)
	}, convergeTimeout)
}

// checkGatewayPod runs the provisioned Deployment's proxy command as a
// local process standing in for its pod (the downward API's values
// substituted; the mesh's xDS address, token and root instead of the
// in-cluster ones; local ports): it serves the Gateway's listener, where
// the HTTPRoute web (to a Service that does not exist) answers 500.
func checkGatewayPod(t *testing.T, cluster *kubetest.Cluster, m *testenv.Mesh) {
	t.Helper()
	d, err := cluster.Client(t).AppsV1().Deployments("default").Get(context.Background(), "web-istio", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	downward := strings.NewReplacer("$(POD_NAME)", "web-istio-0", "$(POD_NAMESPACE)", "default",
		"$(SERVICE_ACCOUNT)", "web-istio", "$(INSTANCE_IP)", "127.0.0.1")
	local := map[string]bool{"--xds-address": true, "--token-file": true, "--ca-root-file": true,
		"--admin-address": true, "--agent-address": true, "--metrics-address": true}
	var args []string
	pod := d.Spec.Template.Spec.Containers[0].Args
	for i := 0; i < len(pod); i++ {
		if local[pod[i]] {
			i++ // and its value
			continue
		}
		args = append(args, downward.Replace(pod[i]))
	}
	offset := testenv.FreePort() - 80
	admin := testenv.FreeAddr()
	args = append(append(args, m.ProxyControlArgs()...), "--admin-address", admin, "--agent-address", testenv.FreeAddr(),
		"--port-offset", fmt.Sprint(offset), "--bind-address", "127.0.0.1")
	p := testenv.Start(t, "gateway pod web-istio-0", args...)
	url := fmt.Sprintf("http://127.0.0.1:%d/", 80+offset)
	if err := testenv.Eventually(func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			return fmt.Errorf("GET %s: %d, want 500 (the route's backend does not exist)", url, resp.StatusCode)
		}
		return nil
	}, convergeTimeout); err != nil {
		t.Fatalf("%v\nargs %q\n%s", err, args, p.Tail(40))
	}
}
