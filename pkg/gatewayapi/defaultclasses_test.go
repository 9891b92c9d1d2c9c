package gatewayapi_test

import (
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// convertOnly converts yaml without the base's GatewayClasses.
func convertOnly(t *testing.T, yaml string) *gatewayapi.Output {
	t.Helper()
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "test.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return gatewayapi.Convert(dec.Resources, gatewayapi.Options{Registry: registry.Build(dec.Resources, registry.BuildOptions{})})
}

// Istio's docs example: only a Gateway of class istio and its HTTPRoute.
const istioDocsGateway = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway, namespace: istio-ingress}
spec:
  gatewayClassName: %CLASS%
  listeners:
  - name: default
    hostname: "*.example.com"
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http, namespace: default}
spec:
  parentRefs: [{name: gateway, namespace: istio-ingress}]
  hostnames: ["httpbin.example.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /get}}]
    backendRefs: [{name: httpbin, port: 8000}]
`

// istiod's built-in GatewayClasses exist without being in the folder; one
// in the folder overrides the default of its name.
func TestDefaultGatewayClasses(t *testing.T) {
	t.Run("istio is built in", func(t *testing.T) {
		out := convertOnly(t, strings.ReplaceAll(istioDocsGateway, "%CLASS%", "istio"))
		lines := strings.Join(statusLines(out.Status), "\n")
		for _, want := range []string{
			"GatewayClass istio: Accepted=True",
			"Gateway istio-ingress/gateway: Accepted=True",
			"Gateway istio-ingress/gateway: Programmed=True",
			"HTTPRoute default/http parent Gateway istio-ingress/gateway: Accepted=True",
		} {
			if !strings.Contains(lines, want) {
				t.Errorf("no %q in status:\n%s", want, lines)
			}
		}
		if len(out.Gateways) != 1 || len(out.VirtualServices) != 1 {
			t.Fatalf("want 1 Gateway and 1 VirtualService, got %d and %d", len(out.Gateways), len(out.VirtualServices))
		}
	})
	t.Run("the folder's class overrides", func(t *testing.T) {
		yaml := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec: {controllerName: example.com/other}
---
` + strings.ReplaceAll(istioDocsGateway, "%CLASS%", "istio")
		out := convertOnly(t, yaml)
		if len(out.Gateways) != 0 || len(out.Status.Gateways) != 0 {
			t.Errorf("a Gateway of a class another controller owns was programmed: %v", statusLines(out.Status))
		}
	})
	t.Run("waypoint class is reported, not served", func(t *testing.T) {
		out := convertOnly(t, strings.ReplaceAll(istioDocsGateway, "%CLASS%", "istio-waypoint"))
		lines := strings.Join(statusLines(out.Status), "\n")
		if len(out.Gateways) != 0 || !strings.Contains(lines, "Gateway istio-ingress/gateway: Accepted=False Unsupported") {
			t.Errorf("waypoint Gateway: %d Istio Gateways, status:\n%s", len(out.Gateways), lines)
		}
	})
	t.Run("unknown class still does not exist", func(t *testing.T) {
		out := convertOnly(t, strings.ReplaceAll(istioDocsGateway, "%CLASS%", "nope"))
		lines := strings.Join(statusLines(out.Status), "\n")
		if len(out.Gateways) != 0 || !strings.Contains(lines, "Gateway istio-ingress/gateway: Accepted=False Pending") {
			t.Errorf("unknown class: status:\n%s", lines)
		}
	})
}

// A GatewayClass's parametersRef: a ConfigMap is accepted and said not to
// be read (istiod accepts any and reads none; class defaults are the
// labelled ConfigMap); another kind is InvalidParameters.
func TestGatewayClassParametersRef(t *testing.T) {
	for _, tc := range []struct{ ref, status, msg string }{
		{`{group: "", kind: ConfigMap, name: opts, namespace: istio-system}`, "True",
			"handled by sluice (controller istio.io/gateway-controller); parametersRef ConfigMap opts is not read (as istiod): " +
				"the class's deployment defaults are the ConfigMap labelled gateway.istio.io/defaults-for-class=mine in the control plane's namespace"},
		{`{group: example.com, kind: Params, name: opts}`, "False",
			"parametersRef example.com/Params opts is not supported by sluice (only a ConfigMap, which is not read, as istiod)"},
	} {
		yaml := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: mine}
spec: {controllerName: istio.io/gateway-controller, parametersRef: ` + tc.ref + `}
---
` + strings.ReplaceAll(istioDocsGateway, "%CLASS%", "mine")
		var got *gatewayapi.Condition
		for _, c := range convertOnly(t, yaml).Status.GatewayClasses {
			if c.Name == "mine" {
				got = &c.Conditions[0]
			}
		}
		if got == nil || got.Type != "Accepted" || got.Status != tc.status || got.Message != tc.msg {
			t.Errorf("Accepted %+v, want %s %q", got, tc.status, tc.msg)
		}
	}
}
