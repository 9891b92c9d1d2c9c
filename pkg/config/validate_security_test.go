package config

import (
	"strings"
	"testing"
)

// checkSecurity decodes doc and returns its validation and support-table
// errors together, as the file source applies them.
func checkSecurity(t *testing.T, doc string) Errors {
	t.Helper()
	res := Decode([]byte(doc), DecodeOptions{File: "policy.yaml"})
	if len(res.Errors) > 0 {
		return res.Errors
	}
	if len(res.Resources) != 1 {
		t.Fatalf("decoded %d resources (not enforced %v, skipped %v)", len(res.Resources), res.NotEnforced, res.Skipped)
	}
	r := res.Resources[0]
	return append(Validate(r), Unsupported(r)...)
}

const apHead = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: foo}
spec:
`

// TestAuthorizationPolicyValidation: every form of AuthorizationPolicy
// Istio accepts is accepted (Istio's documented examples among them); each
// form Istio's webhook rejects, and each sluice does not implement, is an
// error naming the file, the resource and the field.
func TestAuthorizationPolicyValidation(t *testing.T) {
	good := map[string]string{
		"allow nothing (empty spec)": `  {}`,
		"allow all ({} rule)":        `  rules: [{}]`,
		"deny all": `  action: DENY
  rules: [{}]`,
		"istio docs: httpbin from sleep, GET with JWT": `  selector: {matchLabels: {app: httpbin, version: v1}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/sleep"]}
    - source: {namespaces: ["dev"]}
    to:
    - operation: {methods: ["GET"]}
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]`,
		"istio docs: deny non-GET from outside foo": `  action: DENY
  rules:
  - from: [{source: {notNamespaces: ["foo"]}}]
    to: [{operation: {notMethods: ["GET"]}}]`,
		"every source and operation field": `  rules:
  - from:
    - source:
        principals: ["*"]
        notPrincipals: ["cluster.local/ns/x/sa/y"]
        requestPrincipals: ["iss/sub", "*"]
        notRequestPrincipals: ["bad/*"]
        namespaces: ["a*"]
        notNamespaces: ["*b"]
        ipBlocks: ["10.0.0.0/8", "1.2.3.4"]
        notIpBlocks: ["10.1.0.0/16"]
        remoteIpBlocks: ["192.168.0.0/16"]
        notRemoteIpBlocks: ["192.168.1.1"]
        trustDomains: ["td*"]
        notTrustDomains: ["other"]
    - source: {serviceAccounts: ["sa", "ns/sa"], notServiceAccounts: ["ns/bad"]}
    to:
    - operation:
        hosts: ["*.example.com"]
        notHosts: ["admin.example.com"]
        ports: ["8080"]
        notPorts: ["9090"]
        methods: ["GET", "POST"]
        notMethods: ["DELETE"]
        paths: ["/exact", "/prefix/*", "*/suffix", "*", "/api/{*}/items", "/files/{**}"]
        notPaths: ["/admin/{**}"]`,
		"every when key": `  rules:
  - when:
    - {key: "request.headers[x-user]", values: ["alice"], notValues: ["bob"]}
    - {key: source.ip, values: ["10.0.0.1"]}
    - {key: remote.ip, notValues: ["10.0.0.0/8"]}
    - {key: source.namespace, values: ["foo"]}
    - {key: source.principal, values: ["cluster.local/ns/foo/sa/bar"]}
    - {key: source.serviceAccount, values: ["foo/bar"]}
    - {key: source.trustDomain, values: ["cluster.local"]}
    - {key: request.auth.principal, values: ["iss/sub"]}
    - {key: request.auth.audiences, values: ["aud"]}
    - {key: request.auth.presenter, values: ["azp"]}
    - {key: "request.auth.claims[groups]", values: ["admin"]}
    - {key: "request.auth.claims[nested][key]", values: ["v"]}
    - {key: destination.ip, values: ["10.0.0.2"]}
    - {key: destination.port, values: ["8080"]}
    - {key: connection.sni, values: ["*.example.com"]}
    - {key: "experimental.envoy.filters.http.jwt_authn[payload]", values: ["x"]}`,
		"audit": `  action: AUDIT
  rules: [{to: [{operation: {paths: ["/audit"]}}]}]`,
		"targetRefs to a Gateway": `  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: web}]
  rules: [{}]`,
	}
	for name, spec := range good {
		t.Run("good/"+name, func(t *testing.T) {
			if errs := checkSecurity(t, apHead+spec); len(errs) > 0 {
				t.Errorf("rejected: %v", errs)
			}
		})
	}
	dryRun := strings.Replace(apHead, "namespace: foo}", "namespace: foo, annotations: {istio.io/dry-run: \"true\"}}", 1)
	if errs := checkSecurity(t, dryRun+"  action: DENY\n  rules: [{}]"); len(errs) > 0 {
		t.Errorf("dry-run DENY rejected: %v", errs)
	}

	bad := []struct{ name, doc, field, msg string }{
		{"CUSTOM", apHead + "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]", "spec.action", "CUSTOM action: ext-authz provider not supported"},
		{"CUSTOM without rules", apHead + "  action: CUSTOM\n  provider: {name: ext}", "spec.rules", "CUSTOM action without `rules`"},
		{"provider without CUSTOM", apHead + "  provider: {name: ext}\n  rules: [{}]", "spec.provider", "must not be with non CUSTOM action"},
		{"DENY without rules", apHead + "  action: DENY", "spec.rules", "DENY action without `rules`"},
		{"empty source", apHead + "  rules: [{from: [{source: {}}]}]", "spec.rules[0].from[0].source", "must not be empty"},
		{"nil source", apHead + "  rules: [{from: [{}]}]", "spec.rules[0].from[0].source", "must not be nil"},
		{"empty operation", apHead + "  rules: [{to: [{operation: {}}]}]", "spec.rules[0].to[0].operation", "must not be empty"},
		{"empty principal", apHead + "  rules: [{from: [{source: {principals: [\"\"]}}]}]", "spec.rules[0].from[0].source.principals", "empty value"},
		{"bad ipBlock", apHead + "  rules: [{from: [{source: {ipBlocks: [\"10.0.0.0/33\"]}}]}]", "spec.rules[0].from[0].source.ipBlocks", "bad CIDR"},
		{"bad remoteIpBlock", apHead + "  rules: [{from: [{source: {notRemoteIpBlocks: [\"nope\"]}}]}]", "spec.rules[0].from[0].source.notRemoteIpBlocks", "bad IP"},
		{"serviceAccounts with namespaces", apHead + "  rules: [{from: [{source: {serviceAccounts: [sa], namespaces: [ns]}}]}]", "spec.rules[0].from[0].source", "cannot set serviceAccounts"},
		{"wildcard serviceAccount", apHead + "  rules: [{from: [{source: {serviceAccounts: [\"s*\"]}}]}]", "spec.rules[0].from[0].source.serviceAccounts", "wildcard not allowed"},
		{"trust domain with slash", apHead + "  rules: [{from: [{source: {trustDomains: [\"a/b\"]}}]}]", "spec.rules[0].from[0].source.trustDomains", "must not contain '/'"},
		{"bad port", apHead + "  rules: [{to: [{operation: {ports: [\"65536\"]}}]}]", "spec.rules[0].to[0].operation.ports", "bad port"},
		{"path template {**} not last", apHead + "  rules: [{to: [{operation: {paths: [\"/{**}/a/{*}\"]}}]}]", "spec.rules[0].to[0].operation.paths", "{**} is not the last operator"},
		{"path template brace in segment", apHead + "  rules: [{to: [{operation: {paths: [\"/a{*}b\"]}}]}]", "spec.rules[0].to[0].operation.paths", "beyond a supported path template"},
		{"path template bad literal", apHead + "  rules: [{to: [{operation: {notPaths: [\"/a b/{*}\"]}}]}]", "spec.rules[0].to[0].operation.notPaths", "invalid string literal"},
		{"when without values", apHead + "  rules: [{when: [{key: source.ip}]}]", "spec.rules[0].when[0]", "at least one of `values` or `notValues`"},
		{"when unknown key", apHead + "  rules: [{when: [{key: source.pod, values: [x]}]}]", "spec.rules[0].when[0].values", "unknown attribute"},
		{"when destination.labels", apHead + "  rules: [{when: [{key: \"destination.labels[app]\", values: [x]}]}]", "spec.rules[0].when[0].values", "replaced by the workload selector"},
		{"when destination.namespace", apHead + "  rules: [{when: [{key: destination.namespace, values: [x]}]}]", "spec.rules[0].when[0].values", "replaced by the metadata.namespace"},
		{"when destination.user", apHead + "  rules: [{when: [{key: destination.user, values: [x]}]}]", "spec.rules[0].when[0].values", "only supported in v1alpha1"},
		{"when header without name", apHead + "  rules: [{when: [{key: request.headers, values: [x]}]}]", "spec.rules[0].when[0].values", "should have format a[b]"},
		{"when bad source.ip", apHead + "  rules: [{when: [{key: source.ip, notValues: [\"1.2.3\"]}]}]", "spec.rules[0].when[0].notValues", "bad IP"},
		{"when bad destination.port", apHead + "  rules: [{when: [{key: destination.port, values: [\"http\"]}]}]", "spec.rules[0].when[0].values", "bad port"},
		{"when empty value", apHead + "  rules: [{when: [{key: source.namespace, values: [\"\"]}]}]", "spec.rules[0].when[0].values", "empty value"},
		{"when other filter's metadata", apHead + "  rules: [{when: [{key: \"experimental.envoy.filters.network.mysql_proxy[db.table]\", values: [x]}]}]",
			"spec.rules[0].when[0].key", "could never match"},
		{"selector and targetRefs", apHead + "  selector: {matchLabels: {app: a}}\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: web}]", "spec", "only one of targetRefs or workloadSelector"},
		{"selector wildcard", apHead + "  selector: {matchLabels: {app: \"a*\"}}", "spec.selector.matchLabels[\"app\"]", "wildcards are not supported"},
		{"targetRef namespace", apHead + "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: web, namespace: other}]", "spec.targetRefs[0].namespace", "cross namespace"},
		{"targetRef kind", apHead + "  targetRefs: [{group: apps, kind: Deployment, name: web}]", "spec.targetRefs[0]", "targetRef must be to"},
		{"targetRef without name", apHead + "  targetRef: {group: gateway.networking.k8s.io, kind: Gateway}", "spec.targetRef.name", "name must be set"},
		{"targetRef Service (waypoint only)", apHead + "  targetRefs: [{kind: Service, name: web}]", "spec.targetRefs[0]", "sluice runs no waypoints"},
		{"targetRef GatewayClass (waypoint only)", apHead + "  targetRef: {group: gateway.networking.k8s.io, kind: GatewayClass, name: istio-waypoint}", "spec.targetRef", "sluice runs no waypoints"},
		{"dry-run not a bool", strings.Replace(dryRun, `"true"`, `"yes"`, 1) + "  rules: [{}]", `metadata.annotations["istio.io/dry-run"]`, "invalid value"},
		{"dry-run on AUDIT", dryRun + "  action: AUDIT\n  rules: [{}]", `metadata.annotations["istio.io/dry-run"]`, "only supports action ALLOW/DENY"},
		{"v1alpha1", strings.Replace(apHead, "/v1\n", "/v1alpha1\n", 1) + "  rules: [{}]", "apiVersion", "not a version Istio serves"},
		{"unknown field", apHead + "  rules: [{fromm: []}]", "spec.rules[0].fromm", "unknown field"},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			errs := checkSecurity(t, tc.doc)
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Error(), tc.msg) && strings.HasPrefix(e.Error(), "policy.yaml") &&
					strings.Contains(e.Error(), "AuthorizationPolicy foo/p") {
					return
				}
			}
			t.Errorf("want an error at %s containing %q naming file and resource; got %v", tc.field, tc.msg, errs)
		})
	}
}

const raHead = `apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
`

// TestRequestAuthenticationValidation: Istio's validateJwtRule.
func TestRequestAuthenticationValidation(t *testing.T) {
	good := raHead + `  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: https://example.com
    audiences: [a, b]
    jwksUri: https://example.com/.well-known/jwks.json
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
    fromParams: [token]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-payload
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
    timeout: 3s
    spaceDelimitedClaims: [roles]
  - issuer: inline
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
`
	if errs := checkSecurity(t, good); len(errs) > 0 {
		t.Errorf("rejected: %v", errs)
	}
	bad := []struct{ name, rule, field, msg string }{
		{"no issuer nor jwksUri", `{audiences: [a]}`, "spec.jwtRules[0]", "issuer or jwksUri"},
		{"empty audience", `{issuer: i, audiences: [""]}`, "spec.jwtRules[0].audiences[0]", "non-empty"},
		{"jwksUri scheme", `{issuer: i, jwksUri: "ftp://x/keys"}`, "spec.jwtRules[0].jwksUri", "not supported"},
		{"bad jwks", `{issuer: i, jwks: "{nope"}`, "spec.jwtRules[0].jwks", "jwks parse error"},
		{"empty header name", `{issuer: i, fromHeaders: [{prefix: x}]}`, "spec.jwtRules[0].fromHeaders[0].name", "non-empty"},
		{"empty param", `{issuer: i, fromParams: [""]}`, "spec.jwtRules[0].fromParams[0]", "non-empty"},
		{"empty cookie", `{issuer: i, fromCookies: [""]}`, "spec.jwtRules[0].fromCookies[0]", "non-empty"},
		{"claim header empty", `{issuer: i, outputClaimToHeaders: [{header: x}]}`, "spec.jwtRules[0].outputClaimToHeaders[0]", "non-empty"},
		{"claim header invalid", `{issuer: i, outputClaimToHeaders: [{header: "x y", claim: sub}]}`, "spec.jwtRules[0].outputClaimToHeaders[0].header", "not a valid header name"},
		{"timeout", `{issuer: i, timeout: 0.0001s}`, "spec.jwtRules[0].timeout", "at least 1ms"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkSecurity(t, raHead+"  jwtRules: ["+tc.rule+"]\n")
			for _, e := range errs {
				if e.Field == tc.field && strings.Contains(e.Error(), tc.msg) && strings.Contains(e.Error(), "RequestAuthentication foo/jwt") {
					return
				}
			}
			t.Errorf("want an error at %s containing %q; got %v", tc.field, tc.msg, errs)
		})
	}
	if errs := checkSecurity(t, raHead+"  targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: x}]\n"); len(errs) != 1 ||
		!strings.Contains(errs[0].Error(), "sluice runs no waypoints") {
		t.Errorf("ServiceEntry targetRef: %v", errs)
	}
}

// TestSecurityWarnings: what Istio accepts with a warning.
func TestSecurityWarnings(t *testing.T) {
	for _, tc := range []struct{ doc, field, msg string }{
		{apHead + "  action: DENY\n  rules: [{to: [{operation: {paths: [/admin]}}]}]", "spec.rules[0]", "deny all traffic to TCP ports"},
		{apHead + "  action: DENY\n  rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]", "spec.rules[0]", "deny all traffic to TCP ports"},
		{apHead + "  selector: {}\n  rules: [{}]", "spec.selector", "without labels"},
		{raHead + "  jwtRules: [{issuer: i, jwks: '{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}'}]", "spec.jwtRules[0].jwks", "private key material"},
	} {
		res := Decode([]byte(tc.doc), DecodeOptions{File: "w.yaml"})
		if len(res.Resources) != 1 {
			t.Fatalf("%v", res.Errors)
		}
		if errs := Validate(res.Resources[0]); len(errs) > 0 {
			t.Errorf("%s: rejected: %v", tc.field, errs)
		}
		ws := Warnings(res.Resources[0])
		if len(ws) != 1 || ws[0].Field != tc.field || !strings.Contains(ws[0].Error(), tc.msg) {
			t.Errorf("warnings %v, want one at %s containing %q", ws, tc.field, tc.msg)
		}
	}
	for _, doc := range []string{
		apHead + "  action: DENY\n  rules: [{to: [{operation: {paths: [/admin], ports: [\"80\"]}}]}]",
		apHead + "  action: DENY\n  rules: [{from: [{source: {namespaces: [x]}}]}]",
		raHead + "  jwtRules: [{issuer: i, jwks: '{\"keys\":[]}'}]",
	} {
		res := Decode([]byte(doc), DecodeOptions{File: "w.yaml"})
		if ws := Warnings(res.Resources[0]); len(ws) != 0 {
			t.Errorf("unexpected warnings %v", ws)
		}
	}
}
