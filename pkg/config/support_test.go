package config

import (
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
	res := Decode([]byte(yaml), DecodeOptions{File: "u.yaml"})
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
	want := []string{
		"spec.trafficPolicy.loadBalancer.warmupDurationSecs",
		"spec.trafficPolicy.proxyProtocol",
		"spec.trafficPolicy.portLevelSettings[0].connectionPool.http.maxConcurrentStreams",
		"spec.subsets[0].trafficPolicy.tunnel",
		"Sidecar default/default: spec.egress[0].bind",
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no error naming %s in:\n%s", w, all)
		}
	}
	if len(got) != len(want) {
		t.Errorf("want %d errors, got %d:\n%s", len(want), len(got), all)
	}
	if strings.Contains(all, "DestinationRule default/fine") || strings.Contains(all, "scoping-only") ||
		strings.Contains(all, "listeners") {
		t.Errorf("implemented fields reported as unsupported:\n%s", all)
	}
}
