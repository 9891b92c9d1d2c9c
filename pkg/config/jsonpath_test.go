package config

import (
	"strings"
	"testing"
)

func TestDecodeErrorNamesFieldPath(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
      weight: 10
    - destination:
        host: reviews
      weight: "ten"
`
	res := Decode([]byte(yaml), DecodeOptions{File: "vs.yaml"})
	if len(res.Errors) != 1 {
		t.Fatalf("want 1 error, got %v", res.Errors)
	}
	msg := res.Errors[0].Error()
	for _, want := range []string{"vs.yaml (document 1)", "VirtualService default/reviews", "spec.http[0].route[1].weight"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "line 1:") {
		t.Errorf("error %q still carries a JSON position", msg)
	}
}

func TestDecodeUnknownFieldNamesPath(t *testing.T) {
	yaml := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: prod}
spec:
  host: reviews
  subsets:
  - name: v1
    lables: {version: v1}
`
	res := Decode([]byte(yaml), DecodeOptions{File: "dr.yaml"})
	if len(res.Errors) != 1 {
		t.Fatalf("want 1 error, got %v", res.Errors)
	}
	msg := res.Errors[0].Error()
	for _, want := range []string{"DestinationRule prod/r", "spec.subsets[0].lables", "unknown field"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
}

func TestDecodeTLSSecret(t *testing.T) {
	yaml := `apiVersion: v1
kind: Secret
metadata: {name: gw-cert, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
stringData:
  tls.key: key
`
	res := Decode([]byte(yaml), DecodeOptions{File: "s.yaml"})
	if len(res.Errors) > 0 || len(res.Resources) != 1 {
		t.Fatalf("%v %v", res.Errors, res.Resources)
	}
	sec := res.Resources[0].Spec.(*Secret)
	if string(sec.Data["tls.crt"]) != "cert" || string(sec.Data["tls.key"]) != "key" || sec.Type != "kubernetes.io/tls" {
		t.Errorf("secret: %+v", sec)
	}
}
