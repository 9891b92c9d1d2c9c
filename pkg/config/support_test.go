package config

import (
	"fmt"
	"strings"
	"testing"
)

// Fields Istio accepts but sluice does not implement are reported, never
// silently dropped; everything sluice implements is not.
func TestUnsupportedFields(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 30s}
    connectionPool: {tcp: {maxConnections: 10}}
    proxyProtocol: {version: V1}
    portLevelSettings:
    - port: {number: 80}
      connectionPool: {http: {maxConcurrentStreams: 10}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tunnel: {protocol: CONNECT, targetHost: example.com, targetPort: 443}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{port: {number: 0, protocol: HTTP, name: http}, bind: "unix:///var/run/egress.sock", hosts: ["./*"]}, {hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: listeners}
spec:
  workloadSelector: {labels: {app: db}}
  ingress:
  - {port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: "unix:///var/run/app.sock", captureMode: NONE}
  - {port: {number: 9090, protocol: TCP, name: tcp}, bind: 127.0.0.1, defaultEndpoint: "127.0.0.1:7070"}
  egress: [{port: {number: 9080, protocol: HTTP, name: http}, bind: 127.0.0.2, captureMode: NONE, hosts: ["./*"]}, {hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoping-only}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fine}
spec:
  host: fine
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
    outlierDetection: {consecutive5xxErrors: 1}
    tls: {mode: SIMPLE}
`
	got := unsupportedOfValid(t, "u.yaml", yaml)
	want := []string{
		"spec.trafficPolicy.loadBalancer.warmupDurationSecs",
		"spec.trafficPolicy.proxyProtocol",
		"spec.trafficPolicy.portLevelSettings[0].connectionPool.http.maxConcurrentStreams",
		"spec.subsets[0].trafficPolicy.tunnel",
		"Sidecar default/default: spec.egress[0].bind",
	}
	all := expectErrorsNaming(t, got, want)
	if strings.Contains(all, "DestinationRule default/fine") || strings.Contains(all, "scoping-only") ||
		strings.Contains(all, "listeners") {
		t.Errorf("implemented fields reported as unsupported:\n%s", all)
	}
}

// Client-certificate fields where Istio gives them no effect are
// rejected; where sluice enforces them they are not.
func TestUnsupportedTLSFields(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, credentialName: c, subjectAltNames: [x], verifyCertificateSpki: ["NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="], caCertificates: /ca.pem}
  - port: {number: 444, name: mutual, protocol: HTTPS}
    hosts: ["b.example.com"]
    tls: {mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, caCrl: /crl.pem,
      subjectAltNames: [x], verifyCertificateSpki: ["NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="], verifyCertificateHash: [df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a]}
  - port: {number: 445, name: cred, protocol: HTTPS}
    hosts: ["c.example.com"]
    tls: {mode: MUTUAL, credentialName: c, caCrl: /crl.pem}
  - port: {number: 446, name: mesh, protocol: HTTPS}
    hosts: ["d.example.com"]
    tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://td/ns/a/sa/b], verifyCertificateHash: [df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
  host: dr
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /ca.pem, caCrl: /crl.pem}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCrl: /crl.pem}}
`
	got := unsupportedOfValid(t, "t.yaml", yaml)
	want := []string{
		"Gateway default/gw: spec.servers[0].tls.subjectAltNames",
		"Gateway default/gw: spec.servers[0].tls.verifyCertificateSpki",
		"Gateway default/gw: spec.servers[0].tls.caCertificates",
		"Gateway default/gw: spec.servers[2].tls.caCrl: tls.caCrl is a file; with credentialName",
		"Gateway default/gw: spec.servers[3].tls.verifyCertificateHash",
		"DestinationRule default/dr: spec.subsets[0].trafficPolicy.tls.caCrl",
	}
	expectErrorsNaming(t, got, want)
}

// Malformed pins are validation errors, not NACKs.
func TestValidateCertificatePins(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: MUTUAL, credentialName: c, verifyCertificateSpki: [abc], verifyCertificateHash: ["DF:6F"]}
`
	res := Decode([]byte(yaml), DecodeOptions{File: "p.yaml"})
	if len(res.Errors) > 0 || len(res.Resources) != 1 {
		t.Fatal(res.Errors)
	}
	all := fmt.Sprint(Validate(res.Resources[0]))
	for _, w := range []string{"spec.servers[0].tls.verifyCertificateSpki[0]", "spec.servers[0].tls.verifyCertificateHash[0]"} {
		if !strings.Contains(all, w) {
			t.Errorf("no error naming %s in %s", w, all)
		}
	}
}

// Gateway API Gateway fields sluice does not act on are rejected.
func TestUnsupportedGatewayAPIFields(t *testing.T) {
	yaml := `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
  infrastructure: {labels: {a: b}}
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{kind: ConfigMap, group: "", name: ca}]
`
	res := Decode([]byte(yaml), DecodeOptions{File: "g.yaml"})
	if len(res.Errors) > 0 || len(res.Resources) != 1 {
		t.Fatal(res.Errors)
	}
	all := fmt.Sprint(Unsupported(res.Resources[0]))
	for _, w := range []string{"spec.tls: Gateway-level TLS", "spec.infrastructure:"} {
		if !strings.Contains(all, w) {
			t.Errorf("no error naming %s in %s", w, all)
		}
	}
	// From a cluster, spec.infrastructure is the deployment controller's
	// (pkg/kube/gwdeploy): accepted.
	r := res.Resources[0]
	r.Source = Source{File: KubernetesSource}
	all = fmt.Sprint(Unsupported(r))
	if strings.Contains(all, "spec.infrastructure") || !strings.Contains(all, "spec.tls") {
		t.Errorf("from Kubernetes: %s, want spec.tls only", all)
	}
}

// A Gateway server's bind and a route match's statPrefix were ignored;
// they are rejected naming the field.
func TestUnsupportedBindAndStatPrefix(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 81, name: http2, protocol: HTTP}, hosts: ["*"], bind: 10.0.0.1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [a]
  http: [{match: [{uri: {prefix: /}}, {uri: {prefix: /x}, statPrefix: x}], route: [{destination: {host: a}}]}]
`
	res := Decode([]byte(yaml), DecodeOptions{File: "b.yaml"})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	var all []string
	for _, r := range res.Resources {
		for _, e := range Unsupported(r) {
			all = append(all, e.Error())
		}
	}
	got := strings.Join(all, "\n")
	if len(all) != 2 || !strings.Contains(got, "spec.servers[1].bind") || !strings.Contains(got, "spec.http[0].match[1].statPrefix") {
		t.Errorf("got:\n%s", got)
	}
}

// unsupportedOfValid decodes yaml, which Istio's validation must accept,
// and returns the support table's errors for its resources.
func unsupportedOfValid(t *testing.T, file, yaml string) []string {
	t.Helper()
	res := Decode([]byte(yaml), DecodeOptions{File: file})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	var got []string
	for _, r := range res.Resources {
		if errs := Validate(r); len(errs) > 0 {
			t.Fatalf("valid Istio config rejected by validation: %v", errs)
		}
		for _, e := range Unsupported(r) {
			got = append(got, e.Error())
		}
	}
	return got
}

// expectErrorsNaming checks that got has exactly one error per wanted
// field path (or message part) and returns them joined.
func expectErrorsNaming(t *testing.T, got, want []string) string {
	t.Helper()
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no error naming %s in:\n%s", w, all)
		}
	}
	if len(got) != len(want) {
		t.Errorf("want %d errors, got %d:\n%s", len(want), len(got), all)
	}
	return all
}
