package analysis

import (
	"fmt"
	"strings"
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

func TestMultiServiceAnalyzer(t *testing.T) {
	deploy := "\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web, sidecar.istio.io/inject: 'true'}}\n    spec:\n      containers: [{name: app, image: web}]\n"
	svc := func(name, ports string) string {
		return "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: default}\nspec:\n  selector: {app: web}\n  ports: [" + ports + "]\n"
	}
	runAnalyzerTable(t, "deployment.MultiServiceAnalyzer", []analyzerCase{
		{"one service", deploy + svc("a", "{name: http, port: 80}"), nil},
		{"one port, two protocols", deploy + svc("a", "{name: http, port: 53}") + svc("b", "{name: dns, port: 53, protocol: UDP}"), []string{
			"IST0116 Deployment default/web: This deployment web is associated with multiple services using port 53 but different protocols: [default/a default/b]",
		}},
		{"one targetPort, two ports", deploy + svc("a", "{name: http, port: 80, targetPort: 8080}") + svc("b", "{name: http, port: 81, targetPort: 8080}"), []string{
			`IST0137 Deployment default/web: This deployment web is associated with multiple services [default/a default/b] using targetPort "8080" but different ports: [80 81].`,
		}},
		{"not in the mesh", strings.Replace(deploy, "sidecar.istio.io/inject: 'true'", "sidecar.istio.io/inject: 'false'", 1) +
			svc("a", "{name: http, port: 53}") + svc("b", "{name: dns, port: 53, protocol: UDP}"), nil},
	})
}
