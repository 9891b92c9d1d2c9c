package gwdeploy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/kube/gwdeploy"
	"github.com/sluice-mesh/sluice/pkg/kube/install"
)

func (e *env) configMap(ns, name string, lbls, data map[string]string) {
	e.t.Helper()
	_, err := e.kc.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls}, Data: data}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) editConfigMap(ns, name string, edit func(data map[string]string)) {
	e.t.Helper()
	ctx := context.Background()
	cm, err := e.kc.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	edit(cm.Data)
	if _, err := e.kc.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func withParams(name, kind string) func(*gwv1.Gateway) {
	return func(g *gwv1.Gateway) {
		g.Spec.Infrastructure = &gwv1.GatewayInfrastructure{ParametersRef: &gwv1.LocalParametersReference{Kind: gwv1.Kind(kind), Name: name}}
	}
}

// wantAccepted checks the Accepted condition the deployment side sets.
func (e *env) wantAccepted(name, msg string) error {
	st, err := e.status(name)
	if err != nil {
		return err
	}
	a := st.Accepted
	switch {
	case msg == "" && a != nil:
		return fmt.Errorf("Accepted %+v, want none", *a)
	case msg == "":
		return nil
	case a == nil:
		return fmt.Errorf("no Accepted, want False InvalidParameters %q", msg)
	case a.Status != "False" || a.Reason != "InvalidParameters" || a.Message != msg:
		return fmt.Errorf("Accepted %s/%s %q, want False/InvalidParameters %q", a.Status, a.Reason, a.Message, msg)
	}
	return nil
}

// chartIdentity is a client config of the control plane's service account
// with the Helm chart's ClusterRole and ClusterRoleBinding (minimal
// profile, namespace istio-system): the controller may do only what the
// chart grants.
func chartIdentity(t *testing.T, c *kubetest.Cluster) *rest.Config {
	t.Helper()
	c.CreateNamespace(t, "istio-system", nil)
	m, err := install.Render(install.RenderOptions{Set: []string{"profile=minimal"}, Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	var sa string
	for _, o := range m.Objects {
		var res string
		switch o.GetKind() {
		case "ClusterRole":
			res = "clusterroles"
		case "ClusterRoleBinding":
			res = "clusterrolebindings"
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			sa = subjects[0].(map[string]any)["name"].(string)
		default:
			continue
		}
		gvr := rbacv1.SchemeGroupVersion.WithResource(res)
		if _, err := dyn.Resource(gvr).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if sa == "" {
		t.Fatal("the chart binds no service account")
	}
	token := c.ServiceAccountToken(t, "istio-system", sa, nil)
	return &rest.Config{Host: c.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CACertPEM}}
}

// A Gateway's parametersRef ConfigMap and its class's defaults customize
// what is deployed (the Deployment's replicas, resources and annotations;
// an HPA and a PDB, owned by the Gateway); ConfigMap edits re-render:
// the HPA follows, a removed key deletes its object. An unusable
// parametersRef (missing, not a ConfigMap, a bad key) is Accepted False,
// InvalidParameters, with istiod's messages; creating the missing
// ConfigMap deploys the Gateway. The controller runs with the chart's
// RBAC.
func TestGatewayParameters(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallGatewayAPICRDs(t)
	e := startAs(t, c, chartIdentity(t, c))
	e.istioClass()
	ctx := context.Background()
	e.configMap("istio-system", "istio-defaults", map[string]string{gwdeploy.LabelClassDefaults: "istio"}, map[string]string{
		gwdeploy.KeyDeployment: "spec:\n  replicas: 2\n  template:\n    metadata:\n      annotations:\n        example.com/class: defaults\n"})
	e.configMap("shop", "gw-options", nil, map[string]string{
		gwdeploy.KeyDeployment: `metadata:
  annotations:
    example.com/from: gw-options
spec:
  template:
    spec:
      containers:
      - name: istio-proxy
        resources:
          requests:
            cpu: 222m
`,
		gwdeploy.KeyHPA: "spec:\n  minReplicas: 2\n  maxReplicas: 4\n",
		gwdeploy.KeyPDB: "spec:\n  minAvailable: 1\n"})
	gw := e.gateway("web", withParams("gw-options", "ConfigMap"))
	e.gateway("missing", withParams("nope", "ConfigMap"))
	e.gateway("secret", withParams("gw-options", "Secret"))
	e.gateway("manual", func(g *gwv1.Gateway) {
		withParams("absent", "ConfigMap")(g)
		g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: "ingress"}}
	})

	eventually(t, "customized", func() error {
		d, err := e.kc.AppsV1().Deployments("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := d.Spec.Template.Spec.Containers[0]
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || c.Resources.Requests.Cpu().String() != "222m" ||
			d.Annotations["example.com/from"] != "gw-options" || d.Spec.Template.Annotations["example.com/class"] != "defaults" {
			return fmt.Errorf("deployment: replicas %v, resources %v, annotations %v, pod annotations %v",
				d.Spec.Replicas, c.Resources, d.Annotations, d.Spec.Template.Annotations)
		}
		hpa, err := e.kc.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 4 || hpa.Spec.ScaleTargetRef.Name != "web-istio" {
			return fmt.Errorf("hpa spec %+v", hpa.Spec)
		}
		pdb, err := e.kc.PolicyV1().PodDisruptionBudgets("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels[gwdeploy.LabelGatewayName] != "web" {
			return fmt.Errorf("pdb spec %+v", pdb.Spec)
		}
		for _, o := range []metav1.Object{hpa, pdb} {
			if err := ownedBy(o, gw); err != nil {
				return err
			}
		}
		return e.wantAccepted("web", "")
	})
	eventually(t, "unusable parametersRefs", func() error {
		if err := e.wantAccepted("missing", "parametersRef ConfigMap shop/nope does not exist"); err != nil {
			return err
		}
		if err := e.wantAccepted("manual", "parametersRef ConfigMap shop/absent does not exist"); err != nil {
			return err // as istiod: checked for manual deployments too
		}
		return e.wantAccepted("secret", "Unsupported parametersRef group/kind /Secret, only ConfigMap is supported")
	})
	checkAcceptedWritten(t, e, "missing", "parametersRef ConfigMap shop/nope does not exist")
	for _, name := range []string{"missing-istio", "secret-istio"} {
		if _, err := e.kc.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment %s: %v, want none", name, err)
		}
	}

	// Edited: the HPA follows; the PDB's key removed deletes it.
	e.editConfigMap("shop", "gw-options", func(d map[string]string) {
		d[gwdeploy.KeyHPA] = "spec:\n  minReplicas: 3\n  maxReplicas: 5\n"
		delete(d, gwdeploy.KeyPDB)
	})
	eventually(t, "HPA edited, PDB deleted", func() error {
		hpa, err := e.kc.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas != 5 {
			return fmt.Errorf("hpa spec %+v", hpa.Spec)
		}
		if _, err := e.kc.PolicyV1().PodDisruptionBudgets("shop").Get(ctx, "web-istio", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pdb: %v, want deleted", err)
		}
		return nil
	})
	// Deleted by someone: put back. (After the edit's reconciles settle,
	// so that the deletion's event is what puts it back.)
	time.Sleep(time.Second)
	if err := e.kc.AutoscalingV2().HorizontalPodAutoscalers("shop").Delete(ctx, "web-istio", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "HPA put back", func() error {
		_, err := e.kc.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		return err
	})
	// The class defaults edited: the Deployment follows.
	e.editConfigMap("istio-system", "istio-defaults", func(d map[string]string) {
		d[gwdeploy.KeyDeployment] = "spec:\n  replicas: 3\n"
	})
	eventually(t, "class defaults edited", func() error {
		d, err := e.kc.AppsV1().Deployments("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 3 || d.Spec.Template.Annotations["example.com/class"] != "" {
			return fmt.Errorf("replicas %d, pod annotations %v", *d.Spec.Replicas, d.Spec.Template.Annotations)
		}
		return nil
	})
	// The HPA's key removed: deleted.
	e.editConfigMap("shop", "gw-options", func(d map[string]string) { delete(d, gwdeploy.KeyHPA) })
	eventually(t, "HPA deleted", func() error {
		if _, err := e.kc.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "web-istio", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("hpa: %v, want deleted", err)
		}
		return nil
	})
	// A key Istio does not read: InvalidParameters naming it; the
	// objects stay as they were.
	e.editConfigMap("shop", "gw-options", func(d map[string]string) { d["hpa"] = "spec: {}" })
	eventually(t, "bad key", func() error {
		return e.wantAccepted("web", `parametersRef ConfigMap shop/gw-options, key "hpa": not a supported key (supported: deployment, horizontalPodAutoscaler, podDisruptionBudget, service, serviceAccount)`)
	})

	// The missing ConfigMap created: the Gateway is deployed.
	e.configMap("shop", "nope", nil, map[string]string{gwdeploy.KeyServiceAccount: "metadata:\n  annotations:\n    example.com/sa: \"yes\"\n"})
	eventually(t, "missing ConfigMap created", func() error {
		sa, err := e.kc.CoreV1().ServiceAccounts("shop").Get(ctx, "missing-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if sa.Annotations["example.com/sa"] != "yes" {
			return fmt.Errorf("service account annotations %v", sa.Annotations)
		}
		return e.wantAccepted("missing", "")
	})
}

// checkAcceptedWritten writes a config status of Gateway name (Accepted
// and Programmed True) through gwstatus with the deployment's conditions:
// the cluster's Gateway is Accepted False, InvalidParameters, msg.
func checkAcceptedWritten(t *testing.T, e *env, name, msg string) {
	t.Helper()
	ctx := context.Background()
	w := e.statusWriter()
	ok := gatewayapi.Condition{Type: "Accepted", Status: "True", Reason: "Accepted"}
	prog := gatewayapi.Condition{Type: "Programmed", Status: "True", Reason: "Programmed"}
	if _, err := w.Write(ctx, &gatewayapi.Status{Gateways: []*gatewayapi.GatewayStatus{{Namespace: "shop", Name: name,
		Conditions: []gatewayapi.Condition{ok, prog}}}}); err != nil {
		t.Fatal(err)
	}
	gw, err := e.gwc.GatewayV1().Gateways("shop").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range gw.Status.Conditions {
		if c.Type == "Accepted" && (c.Status != "False" || c.Reason != "InvalidParameters" || c.Message != msg) {
			t.Fatalf("written Accepted %s/%s %q, want False/InvalidParameters %q", c.Status, c.Reason, c.Message, msg)
		}
		if c.Type == "Accepted" {
			return
		}
	}
	t.Fatalf("no Accepted condition written: %+v", gw.Status.Conditions)
}
