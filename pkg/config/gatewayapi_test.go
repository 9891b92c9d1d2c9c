package config

import (
	"strings"
	"testing"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestDecodeGatewayAPI(t *testing.T) {
	cases := []struct {
		name, doc string
		kind      Kind
		ns        string
		err       string // substring of the error; "" for none
	}{
		{"HTTPRoute v1", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: gw}]}\n",
			KindHTTPRoute, "default", ""},
		{"HTTPRoute v1beta1", "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: r, namespace: a}\nspec: {}\n",
			KindHTTPRoute, "a", ""},
		{"TCPRoute v1alpha2 converts to v1", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec: {rules: [{backendRefs: [{name: s, port: 1}]}]}\n",
			KindTCPRoute, "default", ""},
		{"TLSRoute v1alpha3", "apiVersion: gateway.networking.k8s.io/v1alpha3\nkind: TLSRoute\nmetadata: {name: r}\nspec: {hostnames: [a.example.com], rules: [{backendRefs: [{name: s, port: 1}]}]}\n",
			KindTLSRoute, "default", ""},
		{"Gateway is qualified by its group", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: c, listeners: [{name: l, port: 80, protocol: HTTP}]}\n",
			KindK8sGateway, "default", ""},
		{"GatewayClass is cluster-scoped", "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c, namespace: x}\nspec: {controllerName: a.b/c}\n",
			KindGatewayClass, "", ""},
		{"Namespace labels", "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps, labels: {team: a}}\n", KindNamespace, "", ""},
		{"unserved version", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n",
			"", "", `apiVersion: "gateway.networking.k8s.io/v1alpha2" is not a version the Gateway API serves for HTTPRoute (use v1, v1beta1)`},
		{"unknown field names its path", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: [{matches: [{path: {vaule: /x}}]}]}\n",
			"", "", "HTTPRoute default/r: spec.rules[0].matches[0].path.vaule: unknown field"},
		{"fields are case sensitive", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {Hostnames: [a]}\n",
			"", "", "spec.Hostnames: unknown field"},
		{"a ConfigMap's data is not a Secret's", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {Corefile: \".:53 {}\"}\n", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Decode([]byte(tc.doc), DecodeOptions{File: "f.yaml"})
			if tc.err != "" {
				if len(res.Errors) == 0 || !strings.Contains(res.Errors.Error(), tc.err) {
					t.Fatalf("want error containing %q, got %v", tc.err, res.Errors)
				}
				return
			}
			if len(res.Errors) > 0 {
				t.Fatalf("unexpected errors: %v", res.Errors)
			}
			if tc.kind == "" {
				if len(res.Resources) != 0 {
					t.Fatalf("want the document skipped, got %v", res.Resources[0].Key())
				}
				return
			}
			if len(res.Resources) != 1 {
				t.Fatalf("want 1 resource, got %d (skipped %v)", len(res.Resources), res.Skipped)
			}
			r := res.Resources[0]
			if r.Kind != tc.kind || r.Namespace != tc.ns {
				t.Errorf("got %s in namespace %q, want %s in %q", r.Kind, r.Namespace, tc.kind, tc.ns)
			}
			if tc.kind == KindTCPRoute {
				spec := r.Spec.(*gwv1.TCPRouteSpec)
				if len(spec.Rules) != 1 || spec.Rules[0].BackendRefs[0].Name != "s" {
					t.Errorf("v1alpha2 TCPRoute lost its rules in conversion: %+v", spec)
				}
			}
		})
	}
}

func TestValidateGatewayAPI(t *testing.T) {
	route := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n"
	gw := "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n"
	cases := []struct {
		name, doc  string
		field, msg string // "" field: valid
	}{
		{"valid route", route + "  parentRefs: [{name: gw}]\n  hostnames: [a.example.com, '*.b.example.com']\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /x}, headers: [{name: v, value: '1'}], method: GET}]\n    backendRefs: [{name: s, port: 80, weight: 2}]\n    timeouts: {request: 10s, backendRequest: 2s}\n", "", ""},
		{"relative path", route + "  rules: [{matches: [{path: {type: Exact, value: x}}]}]\n", "spec.rules[0].matches[0].path.value", "absolute path"},
		{"double slash", route + "  rules: [{matches: [{path: {value: /a//b}}]}]\n", "spec.rules[0].matches[0].path.value", "'//'"},
		{"bad regex", route + "  rules: [{matches: [{path: {type: RegularExpression, value: '(x'}}]}]\n", "spec.rules[0].matches[0].path.value", "invalid regex"},
		{"bad path type", route + "  rules: [{matches: [{path: {type: Prefix, value: /x}}]}]\n", "spec.rules[0].matches[0].path.type", "not one of"},
		{"duplicate header match", route + "  rules: [{matches: [{headers: [{name: A, value: '1'}, {name: a, value: '2'}]}]}]\n", "spec.rules[0].matches[0].headers[1].name", "duplicate"},
		{"filter without its field", route + "  rules: [{filters: [{type: RequestHeaderModifier}]}]\n", "spec.rules[0].filters[0].requestHeaderModifier", "required"},
		{"filter with another's field", route + "  rules: [{filters: [{type: URLRewrite, urlRewrite: {}, requestRedirect: {}}]}]\n", "spec.rules[0].filters[0].requestRedirect", "must not be set"},
		{"redirect with rewrite", route + "  rules: [{filters: [{type: URLRewrite, urlRewrite: {}}, {type: RequestRedirect, requestRedirect: {}}]}]\n", "spec.rules[0].filters", "cannot be used together"},
		{"prefix replacement needs a PathPrefix", route + "  rules: [{matches: [{path: {type: Exact, value: /x}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /y}}}]}]\n",
			"spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch", "exactly one PathPrefix"},
		{"redirect status", route + "  rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]}]\n", "spec.rules[0].filters[0].requestRedirect.statusCode", "not one of"},
		{"service without port", route + "  rules: [{backendRefs: [{name: s}]}]\n", "spec.rules[0].backendRefs[0].port", "required when the backend is a Service"},
		{"weight range", route + "  rules: [{backendRefs: [{name: s, port: 1, weight: -1}]}]\n", "spec.rules[0].backendRefs[0].weight", "not from 0"},
		{"backend timeout beyond request", route + "  rules: [{timeouts: {request: 1s, backendRequest: 2s}}]\n", "spec.rules[0].timeouts.backendRequest", "cannot be longer"},
		{"duration format", route + "  rules: [{timeouts: {request: 1.5s}}]\n", "spec.rules[0].timeouts.request", "not a Gateway API duration"},
		{"uppercase hostname", route + "  hostnames: [Foo.com]\n", "spec.hostnames[0]", "not a valid hostname"},
		{"mirror percent and fraction", route + "  rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 1}, percent: 5, fraction: {numerator: 1}}}]}]\n",
			"spec.rules[0].filters[0].requestMirror", "only one of percent or fraction"},
		{"valid gateway", gw + "  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n  - {name: https, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: c}]}}\n", "", ""},
		{"duplicate listener", gw + "  listeners: [{name: a, port: 80, protocol: HTTP}, {name: a, port: 81, protocol: HTTP}]\n", "spec.listeners[1].name", "duplicate listener name"},
		{"same port, protocol and hostname", gw + "  listeners: [{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: HTTP}]\n", "spec.listeners[1]", "must be unique"},
		{"HTTPS needs tls", gw + "  listeners: [{name: a, port: 443, protocol: HTTPS}]\n", "spec.listeners[0].tls", "required for protocol HTTPS"},
		{"HTTP takes no tls", gw + "  listeners: [{name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}]\n", "spec.listeners[0].tls", "must not be set"},
		{"Terminate needs certificates", gw + "  listeners: [{name: a, port: 443, protocol: HTTPS, tls: {mode: Terminate}}]\n", "spec.listeners[0].tls.certificateRefs", "must be specified"},
		{"TCP takes no hostname", gw + "  listeners: [{name: a, port: 9, protocol: TCP, hostname: a.b}]\n", "spec.listeners[0].hostname", "must not be set"},
		{"selector required", gw + "  listeners: [{name: a, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}]\n", "spec.listeners[0].allowedRoutes.namespaces.selector", "required"},
		{"port range", gw + "  listeners: [{name: a, port: 0, protocol: HTTP}]\n", "spec.listeners[0].port", "not a port"},
		{"controller name", "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: c}\nspec: {controllerName: nodomain}\n", "spec.controllerName", "domain-prefixed"},
		{"grant needs namespace", "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g}\nspec: {from: [{group: gateway.networking.k8s.io, kind: HTTPRoute}], to: [{group: '', kind: Service}]}\n",
			"spec.from[0].namespace", "required"},
		{"GRPC method match", "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\nspec: {rules: [{matches: [{method: {type: Exact}}]}]}\n", "spec.rules[0].matches[0].method", "one or both"},
		{"TCPRoute needs backends", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec: {rules: [{}]}\n", "spec.rules[0].backendRefs", "at least one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Decode([]byte(tc.doc), DecodeOptions{File: "f.yaml"})
			if len(res.Errors) > 0 || len(res.Resources) != 1 {
				t.Fatalf("decode: %v (resources %d)", res.Errors, len(res.Resources))
			}
			errs := Validate(res.Resources[0])
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Err.Error(), tc.msg) {
					return
				}
			}
			t.Fatalf("want an error at %s containing %q, got %v", tc.field, tc.msg, errs)
		})
	}
}
