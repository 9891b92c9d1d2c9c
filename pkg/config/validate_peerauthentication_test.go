package config

import (
	"strings"
	"testing"

	security "istio.io/api/security/v1beta1"
)

func TestPeerAuthenticationDecodes(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1"} {
		r := decodeOne(t, `apiVersion: security.istio.io/`+version+`
kind: PeerAuthentication
metadata: {name: strict, namespace: prod}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
    9090: {}
`)
		pa, ok := r.Spec.(*security.PeerAuthentication)
		if !ok || r.Kind != KindPeerAuthentication {
			t.Fatalf("%s: spec %T kind %s", version, r.Spec, r.Kind)
		}
		if pa.GetMtls().GetMode() != security.PeerAuthentication_MutualTLS_STRICT ||
			pa.PortLevelMtls[8080].GetMode() != security.PeerAuthentication_MutualTLS_DISABLE ||
			pa.PortLevelMtls[9090].GetMode() != security.PeerAuthentication_MutualTLS_UNSET {
			t.Fatalf("%s: decoded %v", version, pa)
		}
		if errs := Validate(r); len(errs) != 0 {
			t.Fatalf("%s: valid policy rejected: %v", version, errs)
		}
	}
}

func TestPeerAuthenticationValidation(t *testing.T) {
	cases := []struct {
		name string
		spec string
		// want are the field paths of the errors, each with a piece of the message; none: valid.
		want []string
	}{
		{name: "empty spec (mesh or namespace PERMISSIVE default)", spec: `{}`},
		{name: "mode only", spec: `{mtls: {mode: PERMISSIVE}}`},
		{name: "mode UNSET", spec: `{mtls: {mode: UNSET}}`},
		{name: "mode DISABLE", spec: `{mtls: {mode: DISABLE}}`},
		{name: "selector without labels is namespace level", spec: `{selector: {}, mtls: {mode: STRICT}}`},
		{name: "port level with selector", spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {"80": {mode: STRICT}}}`},
		{name: "port level without selector",
			spec: `{mtls: {mode: STRICT}, portLevelMtls: {"80": {mode: DISABLE}}}`,
			want: []string{`spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS`}},
		{name: "port level with empty selector",
			spec: `{selector: {matchLabels: {}}, portLevelMtls: {"80": {mode: DISABLE}}}`,
			want: []string{`spec.portLevelMtls: mesh/namespace`}},
		{name: "empty port level",
			spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {}}`,
			want: []string{`spec.portLevelMtls: port level mTLS, if defined, must have at least one element`}},
		{name: "port 0",
			spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {"0": {mode: STRICT}}}`,
			want: []string{`spec.portLevelMtls["0"]: port must be in range 1..65535`}},
		{name: "port 70000",
			spec: `{selector: {matchLabels: {app: a}}, portLevelMtls: {"70000": {mode: STRICT}}}`,
			want: []string{`spec.portLevelMtls["70000"]: port must be in range 1..65535`}},
		{name: "wildcard in selector",
			spec: `{selector: {matchLabels: {app: "a*"}}}`,
			want: []string{`spec.selector.matchLabels["app"]: wildcards are not supported`}},
		{name: "empty selector key",
			spec: `{selector: {matchLabels: {"": a}}}`,
			want: []string{`spec.selector.matchLabels[""]: empty key`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := decodeOne(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: prod}\nspec: "+c.spec+"\n")
			errs := Validate(r)
			if len(errs) != len(c.want) {
				t.Fatalf("errors %v, want %d naming %v", errs, len(c.want), c.want)
			}
			for i, w := range c.want {
				msg := errs[i].Error()
				if !strings.Contains(msg, w) || !strings.Contains(msg, "test.yaml") || !strings.Contains(msg, "PeerAuthentication prod/p") {
					t.Errorf("error %q does not name file, resource and %q", msg, w)
				}
			}
		})
	}
}

func TestPeerAuthenticationDecodeErrors(t *testing.T) {
	cases := map[string]struct{ doc, field, msg string }{
		"unknown mode":          {doc: "spec: {mtls: {mode: MUTUAL}}", field: "spec.mtls.mode", msg: "MUTUAL"},
		"unknown field":         {doc: "spec: {mtls: {mode: STRICT}, action: DENY}", field: "spec", msg: "action"},
		"unknown field in mtls": {doc: "spec: {mtls: {mode: STRICT, strict: true}}", field: "spec.mtls", msg: "strict"},
		"port not a number":     {doc: `spec: {selector: {matchLabels: {a: b}}, portLevelMtls: {http: {mode: STRICT}}}`, field: "spec.portLevelMtls", msg: "http"},
		"negative port":         {doc: `spec: {selector: {matchLabels: {a: b}}, portLevelMtls: {"-1": {mode: STRICT}}}`, field: "spec.portLevelMtls", msg: "-1"},
		"unserved version":      {doc: "spec: {}", field: "apiVersion", msg: "v1alpha1"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			version := "v1"
			if c.field == "apiVersion" {
				version = "v1alpha1"
			}
			res := Decode([]byte("apiVersion: security.istio.io/"+version+"\nkind: PeerAuthentication\nmetadata: {name: p, namespace: prod}\n"+c.doc+"\n"),
				DecodeOptions{File: "pa.yaml"})
			if len(res.Errors) != 1 || len(res.Resources) != 0 {
				t.Fatalf("errors %v resources %d, want one error", res.Errors, len(res.Resources))
			}
			msg := res.Errors[0].Error()
			for _, want := range []string{"pa.yaml", "PeerAuthentication prod/p", c.field, c.msg} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
		})
	}
}

func TestPeerAuthenticationSelectorWithoutLabelsWarns(t *testing.T) {
	r := decodeOne(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: prod}\nspec: {selector: {}}\n")
	w := Warnings(r)
	if len(w) != 1 || !strings.Contains(w[0].Error(), "spec.selector") {
		t.Fatalf("warnings %v, want one on spec.selector", w)
	}
}
