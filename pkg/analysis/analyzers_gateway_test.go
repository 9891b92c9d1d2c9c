package analysis

import "testing"

const tlsCred = "    tls: {mode: SIMPLE, credentialName: cert}\n"

func TestConflictingGatewayAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "gateway.ConflictingGatewayAnalyzer", []analyzerCase{
		{"same selector, port and host", ingressPodAndService +
			gateway("a", "gw", "app: ingress", 443, "foo.com", "") + gateway("b", "gw", "app: ingress", 443, "foo.com", ""),
			[]string{
				"IST0145 Gateway gw/a: Conflict with gateways gw/b (workload selector app=ingress, port 443, hosts foo.com).",
				"IST0145 Gateway gw/b: Conflict with gateways gw/a (workload selector app=ingress, port 443, hosts foo.com).",
			}},
		{"other port", ingressPodAndService +
			gateway("a", "gw", "app: ingress", 443, "foo.com", "") + gateway("b", "gw", "app: ingress", 8443, "foo.com", ""), nil},
		{"other host", ingressPodAndService +
			gateway("a", "gw", "app: ingress", 443, "foo.com", "") + gateway("b", "gw", "app: ingress", 443, "bar.com", ""), nil},
		{"selector matches no pod", gateway("a", "gw", "app: nothing", 443, "foo.com", ""),
			nil},
	})
}

func TestIngressGatewayPortAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "gateway.IngressGatewayPortAnalyzer", []analyzerCase{
		{"target port offered", ingressPodAndService + gateway("a", "gw", "app: ingress", 8080, "'*'", ""), nil},
		{"service port offered", ingressPodAndService + gateway("a", "gw", "app: ingress", 80, "'*'", ""), nil},
		{"port not offered", ingressPodAndService + gateway("a", "gw", "app: ingress", 9999, "'*'", ""), []string{
			"IST0162 Gateway gw/a: The gateway is listening on a target port (port 9999) that is not defined in the Service associated with its workload instances (Pod selector app=ingress). If you need to access the gateway port through the gateway Service, it will not be available.",
		}},
		{"no pod", gateway("a", "gw", "app: nothing", 80, "'*'", ""), []string{
			`IST0101 Gateway gw/a: Referenced selector not found: "app=nothing"`,
		}},
	})
}

func TestSecretAnalyzer(t *testing.T) {
	secret := "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert, namespace: gw}\ntype: kubernetes.io/tls\ndata: {tls.crt: " +
		b64(testCertPEM(t, false)) + ", tls.key: a2V5}\n"
	expired := "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert, namespace: gw}\ntype: kubernetes.io/tls\ndata: {tls.crt: " +
		b64(testCertPEM(t, true)) + ", tls.key: a2V5}\n"
	runAnalyzerTable(t, "gateway.SecretAnalyzer", []analyzerCase{
		{"valid secret in the pods' namespace", ingressPodAndService + secret + gateway("a", "default", "app: ingress", 443, "'*'", tlsCred), nil},
		{"missing secret", ingressPodAndService + gateway("a", "gw", "app: ingress", 443, "'*'", tlsCred), []string{
			`IST0101 Gateway gw/a: Referenced credentialName not found: "cert"`,
		}},
		{"expired certificate", ingressPodAndService + expired + gateway("a", "gw", "app: ingress", 443, "'*'", tlsCred), []string{
			"IST0161 Gateway gw/a: The credential referenced by the Gateway a in namespace gw is invalid, which can cause the traffic not to work as expected.",
		}},
	})
}

func TestCertificateAnalyzer(t *testing.T) {
	runAnalyzerTable(t, "gateway.CertificateAnalyzer", []analyzerCase{
		{"one credential, two gateways", gateway("a", "gw", "app: ingress", 443, "a.com", tlsCred) + gateway("b", "gw", "app: ingress", 443, "b.com", tlsCred), []string{
			"IST0138 Gateway gw/a: Duplicate certificate in multiple gateways [gw/a gw/b] may cause 404s if clients re-use HTTP2 connections.",
			"IST0138 Gateway gw/b: Duplicate certificate in multiple gateways [gw/b gw/a] may cause 404s if clients re-use HTTP2 connections.",
		}},
		{"different workloads", gateway("a", "gw", "app: ingress", 443, "a.com", tlsCred) + gateway("b", "gw", "app: other", 443, "b.com", tlsCred), nil},
		{"different credentials", gateway("a", "gw", "app: ingress", 443, "a.com", tlsCred) +
			gateway("b", "gw", "app: ingress", 443, "b.com", "    tls: {mode: SIMPLE, credentialName: other}\n"), nil},
	})
}
