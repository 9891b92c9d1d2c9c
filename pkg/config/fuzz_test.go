package config

import "testing"

// FuzzDecodeValidate feeds arbitrary bytes through what a config file goes
// through (decode, validation, the support table, warnings): bad input
// must come out as errors, never a panic. Seeds: the f.Add documents below
// and testdata/fuzz/FuzzDecodeValidate.
func FuzzDecodeValidate(f *testing.F) {
	for _, seed := range []string{
		"",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: r, subset: v1}, weight: 100}]\n    retries: {attempts: 3, perTryTimeout: 1s}\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 3}\n    tls: {mode: SIMPLE, caCrl: /crl}\n    portLevelSettings: [{port: {number: 80}, loadBalancer: {warmupDurationSecs: 3s}}]\n",
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [\"*\"]\n    tls: {mode: OPTIONAL_MUTUAL, credentialName: c, subjectAltNames: [a], verifyCertificateHash: [\"00\"]}\n",
		"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  egress: [{port: {number: 1}, hosts: [\"./*\"]}]\n",
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: h}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{matches: [{path: {type: RegularExpression, value: \"(\"}}]}]\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s}\n  spec: {ports: [{port: 80}]}\n",
		"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny}\nspec: {action: DENY}\n---\n{}\n---\n- 1\n",
		"{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"ServiceEntry\", \"metadata\": {\"name\": \"e\"}, \"spec\": {\"hosts\": [\"*.x\"], \"subjectAltNames\": [\"a\"]}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := Decode(data, DecodeOptions{File: "fuzz.yaml", DefaultNamespace: "default"})
		for _, r := range res.Resources {
			_ = Validate(r)
			_ = Unsupported(r)
			_ = Warnings(r)
		}
		for _, e := range res.Errors {
			_ = e.Error()
		}
	})
}
