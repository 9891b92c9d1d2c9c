package analysis

import (
	"fmt"
	"testing"
)

func authzPolicy(name, ns, spec string) string {
	return fmt.Sprintf("\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, ns, spec)
}

const meshPod = "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: default, labels: {app: web}}\nspec:\n  containers: [{name: app, image: web}, {name: istio-proxy, image: proxyv2}]\n"

func TestAuthorizationPoliciesAnalyzer(t *testing.T) {
	ns := func(name string) string {
		return "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + "}\n"
	}
	runAnalyzerTable(t, "auth.AuthorizationPoliciesAnalyzer", []analyzerCase{
		{"selector matches an in-mesh pod", meshPod + authzPolicy("p", "default", "  selector: {matchLabels: {app: web}}\n  action: ALLOW\n"), nil},
		{"selector matches no pod", meshPod + authzPolicy("p", "default", "  selector: {matchLabels: {app: api}}\n"), []string{
			"IST0127 AuthorizationPolicy default/p: No matching workloads for this resource with the following labels: app=api",
		}},
		{"namespace without in-mesh pods", authzPolicy("p", "prod", "  action: ALLOW\n"), []string{
			"IST0127 AuthorizationPolicy prod/p: No matching workloads for this resource with the following labels: ",
		}},
		{"root namespace selector matching a pod anywhere", meshPod + authzPolicy("p", "istio-system", "  selector: {matchLabels: {app: web}}\n"), nil},
		{"source namespace declared", meshPod + ns("default") + ns("prod-1") + authzPolicy("p", "default", "  rules:\n  - from:\n    - source: {namespaces: [prod-*, default]}\n"), nil},
		{"source namespace unknown", meshPod + ns("default") + authzPolicy("p", "default", "  rules:\n  - from:\n    - source: {namespaces: [default], notNamespaces: [legacy]}\n"), []string{
			`IST0101 AuthorizationPolicy default/p: Referenced namespace not found: "legacy"`,
		}},
	})
}

func TestK8sGatewaySelectorAnalyzer(t *testing.T) {
	gwPod := "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: gw-1, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: web-gw, app: gw}}\nspec:\n  containers: [{name: istio-proxy, image: proxyv2}]\n"
	runAnalyzerTable(t, "k8sgateway.SelectorAnalyzer", []analyzerCase{
		{"selector picks a gateway pod", gwPod + authzPolicy("p", "default", "  selector: {matchLabels: {app: gw}}\n"), []string{
			"IST0166 AuthorizationPolicy default/p: Ineffective selector on Kubernetes Gateway web-gw. Use the TargetRef field instead.",
		}},
		{"targetRef", gwPod + authzPolicy("p", "default", "  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: web-gw}\n"), nil},
		{"other pods", gwPod + authzPolicy("p", "default", "  selector: {matchLabels: {app: web}}\n"), nil},
	})
}
