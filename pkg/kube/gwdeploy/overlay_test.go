package gwdeploy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// testInput is the input of Gateway shop/web (class istio, listener http
// on 80) of a default-revision controller.
func testInput(t *testing.T) *input {
	t.Helper()
	c := &Controller{opts: Options{Image: "example.com/sluice:test", XDSAddress: "istiod.istio-system.svc:15012", TrustDomain: "cluster.local"}}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "uid-1", Labels: map[string]string{"team": "a"}},
		Spec: gwv1.GatewaySpec{GatewayClassName: "istio", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
	in, err := c.newInput(gw)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func byKind(objs []*object) map[string]*object {
	out := map[string]*object{}
	for _, o := range objs {
		out[o.kind] = o
	}
	return out
}

// decodeInto decodes an applied object's data, which must be set.
func decodeInto(t *testing.T, o *object, into any) {
	t.Helper()
	if o.data == nil {
		t.Fatalf("%s not rendered", o.kind)
	}
	if err := json.Unmarshal(o.data, into); err != nil {
		t.Fatal(err)
	}
}

// Istio's "customizations" case (deploymentcontroller_test.go) with class
// defaults under it: the class's ConfigMap first, the Gateway's on top;
// containers merge by name, Service ports by port; the HPA and PDB are
// rendered because a key names them, with the template's fields kept.
func TestOverlayCustomizations(t *testing.T) {
	in := testInput(t)
	class := overlay{source: "ConfigMap istio-system/defaults", data: map[string]string{
		KeyDeployment: "metadata:\n  annotations:\n    from-class: x\nspec:\n  replicas: 2\n",
		KeyService:    "spec:\n  externalTrafficPolicy: Local\n  ports:\n  - port: 80\n    nodePort: 30080\n",
	}}
	params := overlay{source: "parametersRef ConfigMap shop/gw-options", params: true, data: map[string]string{
		KeyPDB: "spec:\n  minAvailable: 1\n",
		KeyHPA: "spec:\n  minReplicas: 2\n  maxReplicas: 2\n",
		KeyDeployment: `metadata:
  annotations:
    cm-annotation: cm-annotation-value
spec:
  replicas: 4
  template:
    metadata:
      labels:
        zone: east
    spec:
      containers:
      - name: istio-proxy
        resources:
          requests:
            cpu: 222m
`,
		KeyServiceAccount: "metadata:\n  annotations:\n    iam.example.com/role: gw\n",
	}}
	objs, err := in.objects([]overlay{class, params})
	if err != nil {
		t.Fatal(err)
	}
	got := byKind(objs)

	var d appsv1.Deployment
	decodeInto(t, got["Deployment"], &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 4 {
		t.Errorf("replicas %v, want 4 (the Gateway's ConfigMap over the class's 2)", d.Spec.Replicas)
	}
	if d.Annotations["cm-annotation"] != "cm-annotation-value" || d.Annotations["from-class"] != "x" {
		t.Errorf("annotations %v: want both overlays'", d.Annotations)
	}
	ct := d.Spec.Template.Spec.Containers
	if len(ct) != 1 || ct[0].Name != "istio-proxy" || ct[0].Resources.Requests.Cpu().String() != "222m" ||
		ct[0].Image != "example.com/sluice:test" || ct[0].ReadinessProbe == nil {
		t.Fatalf("containers not merged by name: %+v", ct)
	}
	if args := strings.Join(ct[0].Args, " "); !strings.Contains(args, ",zone=east") || !strings.HasPrefix(args, "proxy --type router") {
		t.Errorf("--labels does not follow the pod's labels: %s", args)
	}
	if d.Name != "web-istio" || len(d.OwnerReferences) != 1 || d.Labels[LabelManaged] != ManagedValue || d.Spec.Template.Labels[LabelGatewayName] != "web" {
		t.Errorf("template's metadata lost: %+v", d.ObjectMeta)
	}

	var svc corev1.Service
	decodeInto(t, got["Service"], &svc)
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || len(svc.Spec.Ports) != 2 ||
		svc.Spec.Ports[1].Name != "http" || svc.Spec.Ports[1].NodePort != 30080 {
		t.Errorf("service: %+v", svc.Spec)
	}
	var sa corev1.ServiceAccount
	decodeInto(t, got["ServiceAccount"], &sa)
	if sa.Annotations["iam.example.com/role"] != "gw" {
		t.Errorf("service account annotations %v", sa.Annotations)
	}

	// The HPA and PDB, whole (metadata's labels: the Gateway's, its name
	// and class, managed; no status).
	meta := `"metadata":{"labels":{"gateway.istio.io/managed":"istio.io-gateway-controller",` +
		`"gateway.networking.k8s.io/gateway-class-name":"istio","gateway.networking.k8s.io/gateway-name":"web","team":"a"},` +
		`"name":"web-istio","namespace":"shop","ownerReferences":[{"apiVersion":"gateway.networking.k8s.io/v1","kind":"Gateway","name":"web","uid":"uid-1"}]}`
	wantHPA := `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler",` + meta +
		`,"spec":{"maxReplicas":2,"minReplicas":2,"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web-istio"}}}`
	if string(got["HorizontalPodAutoscaler"].data) != wantHPA {
		t.Errorf("HPA\n got %s\nwant %s", got["HorizontalPodAutoscaler"].data, wantHPA)
	}
	wantPDB := `{"apiVersion":"policy/v1","kind":"PodDisruptionBudget",` + meta +
		`,"spec":{"minAvailable":1,"selector":{"matchLabels":{"gateway.networking.k8s.io/gateway-name":"web"}}}}`
	if string(got["PodDisruptionBudget"].data) != wantPDB {
		t.Errorf("PDB\n got %s\nwant %s", got["PodDisruptionBudget"].data, wantPDB)
	}
}

// Without overlays: no HPA or PDB, a Deployment without replicas (the
// template sets none, as Istio's), no status in what is applied.
func TestOverlayNone(t *testing.T) {
	objs, err := testInput(t).objects(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := byKind(objs)
	if got["HorizontalPodAutoscaler"].data != nil || got["PodDisruptionBudget"].data != nil {
		t.Errorf("HPA %s / PDB %s rendered without a key", got["HorizontalPodAutoscaler"].data, got["PodDisruptionBudget"].data)
	}
	var raw map[string]any
	decodeInto(t, got["Deployment"], &raw)
	spec := raw["spec"].(map[string]any)
	if _, ok := spec["replicas"]; ok {
		t.Errorf("replicas set: %v", spec["replicas"])
	}
	if _, ok := raw["status"]; ok {
		t.Errorf("status applied")
	}
	// The class defaults alone may ask for the HPA.
	objs, err = testInput(t).objects([]overlay{{source: "class", data: map[string]string{KeyHPA: ""}}})
	if err != nil {
		t.Fatal(err)
	}
	if h := byKind(objs)["HorizontalPodAutoscaler"].data; !strings.Contains(string(h), `"maxReplicas":1,`) {
		t.Errorf("an empty key renders the template's HPA: %s", h)
	}
}

// Overlays that cannot apply: an error naming the ConfigMap and key; the
// Gateway's own (parametersRef) ones are InvalidParameters, the class
// defaults' not.
func TestOverlayErrors(t *testing.T) {
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"unknown key", "configMap", "x: 1", `key "configMap": not a supported key (supported: deployment, horizontalPodAutoscaler, podDisruptionBudget, service, serviceAccount)`},
		{"bad YAML", KeyDeployment, "spec: [", `key "deployment": not a YAML object`},
		{"not an object", KeyService, "- a\n- b", `key "service": not a YAML object`},
		{"unknown field", KeyDeployment, "spec:\n  replica: 3", `key "deployment": not a valid Deployment: `},
		{"wrong type", KeyHPA, "spec:\n  maxReplicas: many", `key "horizontalPodAutoscaler": not a valid HorizontalPodAutoscaler`},
		{"rename", KeyDeployment, "metadata:\n  name: not-allowed", `key "deployment": illegal metadata change`},
		{"owner", KeyPDB, "metadata:\n  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: x, uid: u2}]", `key "podDisruptionBudget": illegal metadata change`},
		{"namespace", KeyServiceAccount, "metadata:\n  namespace: other", `key "serviceAccount": illegal metadata change`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, params := range []bool{true, false} {
				src := "ConfigMap istio-system/defaults"
				if params {
					src = "parametersRef ConfigMap shop/gw-options"
				}
				_, err := testInput(t).objects([]overlay{{source: src, params: params, data: map[string]string{tc.key: tc.value}}})
				if err == nil || !strings.Contains(err.Error(), src+", "+tc.want) {
					t.Fatalf("error %v, want %q", err, src+", "+tc.want)
				}
				var pe *paramsError
				if errors.As(err, &pe) != params {
					t.Errorf("InvalidParameters %v, want %v", !params, params)
				}
			}
		})
	}
}
