package analysis

import (
	"fmt"
	"testing"
)

func destinationRule(name, spec string) string {
	return fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: default}\nspec:\n%s", name, spec)
}

func pod(name, labels string) string {
	return fmt.Sprintf("\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: default, labels: {%s}}\nspec:\n  containers: [{name: app, image: app}]\n", name, labels)
}

func TestCaCertificateAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "destinationrule.CaCertificateAnalyzer", []analyzerCase{
		{"simple without CA", destinationRule("d", "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n"), []string{
			"IST0128 DestinationRule default/d: DestinationRule default/d in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: api.example.com",
		}},
		{"port level mutual without CA", destinationRule("d", "  host: api.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}\n"), []string{
			"IST0129 DestinationRule default/d: DestinationRule default/d in namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: api.example.com at port number:443",
		}},
		{"with CA", destinationRule("d", "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, caCertificates: /ca.pem}\n"), nil},
		{"istio mutual", destinationRule("d", "  host: api.example.com\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n"), nil},
	})
}

func TestSubsetSelectPodAnalyzer(t *testing.T) {
	svc := service("reviews", "default", "{name: http, port: 80}")
	dr := destinationRule("reviews", "  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n")
	runAnalyzerTable(t, "destinationrule.PodNotSelectedAnalyzer", []analyzerCase{
		{"every subset has a pod", svc + dr + pod("r1", "app: reviews, version: v1") + pod("r2", "app: reviews, version: v2"), nil},
		{"a subset without pods", svc + dr + pod("r1", "app: reviews, version: v1"), []string{
			"IST0173 DestinationRule default/reviews: The Subset v2 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
		}},
		{"unknown host", destinationRule("x", "  host: nowhere\n"), []string{
			"IST0174 DestinationRule default/x: The host nowhere defined in the DestinationRule does not match any services in the mesh.",
		}},
	})
}

func serviceEntry(name, spec string) string {
	return fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: default}\nspec:\n%s", name, spec)
}

func TestProtocolAddressesAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "serviceentry.ProtocolAddressesAnalyzer", []analyzerCase{
		{"TCP without addresses", serviceEntry("db", "  hosts: [db.example.com]\n  ports:\n  - {number: 5432, name: tcp, protocol: TCP}\n  - {number: 5433, name: pg}\n  resolution: DNS\n"), []string{
			// One per port: they differ in the line they point at.
			"IST0134 ServiceEntry default/db: ServiceEntry addresses are required for this protocol.",
			"IST0134 ServiceEntry default/db: ServiceEntry addresses are required for this protocol.",
		}},
		{"TCP with addresses", serviceEntry("db", "  hosts: [db.example.com]\n  addresses: [10.0.0.1]\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: DNS\n"), nil},
		{"HTTP", serviceEntry("web", "  hosts: [web.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"), nil},
	})
}

func TestConflictingServiceEntryProtocolAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "serviceentry.ConflictingServiceEntryProtocolAnalyzer", []analyzerCase{
		{"HTTP and TCP on one port", serviceEntry("a", "  hosts: [x.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n") +
			serviceEntry("b", "  hosts: [x.example.com]\n  ports: [{number: 80, name: tcp, protocol: TCP}]\n  resolution: DNS\n"), []string{
			`IST0177 ServiceEntry default/a: Multiple ServiceEntries (default/a, default/b) define the same host "x.example.com" and port 80 with conflicting protocols (HTTP, TCP).`,
			`IST0177 ServiceEntry default/b: Multiple ServiceEntries (default/a, default/b) define the same host "x.example.com" and port 80 with conflicting protocols (HTTP, TCP).`,
		}},
		{"same protocol, other case", serviceEntry("a", "  hosts: [x.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n") +
			serviceEntry("b", "  hosts: [x.example.com]\n  ports: [{number: 80, name: http, protocol: http}]\n  resolution: DNS\n"), nil},
	})
}

func TestPortNameAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "service.PortNameAnalyzer", []analyzerCase{
		{"conventional names", service("s", "default", "{name: http-web, port: 80}, {name: grpc-web, port: 81}, {name: x, port: 3306}, {name: tcp, port: 82}"), nil},
		{"appProtocol", service("s", "default", "{name: web, port: 80, appProtocol: http}"), nil},
		{"unknown prefix", service("s", "default", "{name: web, port: 80, targetPort: 8080}"), []string{
			"IST0118 Service default/s: Port name web (port: 80, targetPort: 8080) doesn't follow the naming convention of Istio port.",
		}},
		{"control plane service", "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: istiod, namespace: istio-system, labels: {istio: pilot}}\nspec:\n  ports: [{name: web, port: 80}]\n", nil},
		{"ExternalName tcp", "\n---\napiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\nspec:\n  type: ExternalName\n  externalName: example.com\n  ports: [{name: tcp, port: 80}]\n", []string{
			"IST0150 Service default/ext: Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly",
		}},
	})
}

func sidecar(name, spec string) string {
	return fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: %s, namespace: default}\nspec:\n%s", name, spec)
}

func TestSidecarSelectorAnalyzer(t *testing.T) {
	egress := "  egress: [{hosts: ['./*']}]\n"
	runAnalyzerTable(t, "sidecar.SelectorAnalyzer", []analyzerCase{
		{"selects a pod", pod("p", "app: a") + sidecar("s", "  workloadSelector: {labels: {app: a}}\n"+egress), nil},
		{"selects nothing", pod("p", "app: a") + sidecar("s", "  workloadSelector: {labels: {app: b}}\n"+egress), []string{
			`IST0101 Sidecar default/s: Referenced selector not found: "app=b"`,
		}},
		{"two select one pod", pod("p", "app: a, v: 1") + sidecar("s1", "  workloadSelector: {labels: {app: a}}\n"+egress) +
			sidecar("s2", "  workloadSelector: {labels: {v: '1'}}\n"+egress), []string{
			`IST0110 Sidecar default/s1: The Sidecars [s1 s2] in namespace "default" select the same workload pod "p", which can lead to undefined behavior.`,
			`IST0110 Sidecar default/s2: The Sidecars [s1 s2] in namespace "default" select the same workload pod "p", which can lead to undefined behavior.`,
		}},
		{"two without selector", sidecar("s1", egress) + sidecar("s2", egress), []string{
			`IST0111 Sidecar default/s1: The Sidecars [s1 s2] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
			`IST0111 Sidecar default/s2: The Sidecars [s1 s2] in namespace "default" have no workload selector, which can lead to undefined behavior.`,
		}},
		{"ambient namespace", "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {istio.io/dataplane-mode: ambient}}\n" + sidecar("s1", egress), []string{
			"IST0167 Sidecar default/s1: The policy has no impact: namespace is in ambient mode, the policy has no impact.",
		}},
	})
}

func TestDeprecationAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "deprecation.FieldAnalyzer", []analyzerCase{
		{"fault delay percent", vs("r", "  hosts: [r]\n  http:\n  - fault: {delay: {percent: 50, fixedDelay: 1s}}\n    route:\n    - destination: {host: r}\n"), []string{
			"IST0002 VirtualService default/r: Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage",
		}},
		{"fault delay percentage", vs("r", "  hosts: [r]\n  http:\n  - fault: {delay: {percentage: {value: 50}, fixedDelay: 1s}}\n    route:\n    - destination: {host: r}\n"), nil},
	})
}

func TestSchemaValidationAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "schema.ValidationAnalyzer.VirtualService", []analyzerCase{
		{"valid", vs("r", "  hosts: [r]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route:\n    - destination: {host: r}\n  - route:\n    - destination: {host: r}\n"), nil},
		{"rule after a catch-all", vs("r", "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n  - match: [{uri: {prefix: /a}}]\n    route:\n    - destination: {host: r}\n"), []string{
			"IST0130 VirtualService default/r: VirtualService rule #1 not used (route without matches defined before).",
		}},
		{"prefix covered by an earlier one", vs("r", "  hosts: [r]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route:\n    - destination: {host: r}\n  - match: [{uri: {prefix: /ab}}]\n    route:\n    - destination: {host: r}\n"), []string{
			"IST0131 VirtualService default/r: VirtualService rule #1 match #0 of prefix /ab is not used (duplicate/overlapping match in rule #0 of prefix /a on #0).",
		}},
		{"invalid", vs("r", "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: -1\n"), []string{
			"IST0106 VirtualService default/r: Schema validation error: spec.http[0].route[0].weight: weight -1 cannot be negative",
		}},
	})
}
