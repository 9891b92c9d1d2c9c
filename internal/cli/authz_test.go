package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// authzFolder is httpbin in foo behind Istio's authz-deny task policies
// (a DENY of GET unless x-token is admin, an ALLOW of /ip) and the
// authz-jwt task's RequestAuthentication with Istio's sample JWKS and an
// ALLOW requiring its principal on /headers.
const authzFolder = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin, namespace: foo}
spec: {address: 127.0.0.5, labels: {app: httpbin}, ports: {http: 80}, serviceAccount: httpbin}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-method-get, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {methods: ["GET"]}}]
    when: [{key: "request.headers[x-token]", notValues: ["admin"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-path-ip, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - to: [{operation: {paths: ["/ip"]}}]
    from: [{source: {principals: ["cluster.local/ns/foo/sa/sleep"]}}]
  - to: [{operation: {paths: ["/headers"]}}]
    from: [{source: {requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io"]}}]
`

func writeAuthzFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	jwks, err := os.ReadFile("../../pkg/proxy/filters/jwtauthn/testdata/istio-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	ra := `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '` + strings.ReplaceAll(string(jwks), "\n", "") + `'
`
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(authzFolder+ra), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// `sluice authz check` evaluates the folder's policies with the proxy's
// engines: each row's decision and the policy that made it.
func TestAuthzCheck(t *testing.T) {
	dir := writeAuthzFolder(t)
	demo := "../../pkg/proxy/filters/jwtauthn/testdata/istio-demo.jwt"
	bad := filepath.Join(t.TempDir(), "bad.jwt")
	os.WriteFile(bad, []byte("not.a.token\n"), 0o600)
	for _, tc := range []struct {
		name    string
		args    []string
		allowed bool
		want    string
	}{
		{"DENY wins: GET without the admin token", []string{"--from", "foo/sleep", "--path", "/ip", "--header", "x-token=guest"}, false,
			"ns[foo]-policy[deny-method-get]-rule[0]"},
		{"ALLOW /ip for sleep with the admin token", []string{"--from", "foo/sleep", "--path", "/ip", "--header", "x-token=admin"}, true,
			"allowed by ALLOW policy ns[foo]-policy[allow-path-ip]-rule[0]"},
		{"other caller: no ALLOW matches", []string{"--from", "bar/sleep", "--path", "/ip", "--header", "x-token=admin"}, false,
			"no ALLOW policy matched"},
		{"plaintext caller has no principal", []string{"--path", "/ip", "--method", "POST"}, false, "no ALLOW policy matched"},
		{"POST /get: no ALLOW rule names the path", []string{"--from", "foo/sleep", "--path", "/get", "--method", "POST"}, false,
			"no ALLOW policy matched"},
		{"valid token gives the request principal", []string{"--path", "/headers", "--method", "POST", "--jwt", demo}, true,
			"allowed by ALLOW policy ns[foo]-policy[allow-path-ip]-rule[1]"},
		{"no token: no request principal", []string{"--path", "/headers", "--method", "POST"}, false, "no ALLOW policy matched"},
		{"invalid token: the proxy's 401", []string{"--path", "/headers", "--method", "POST", "--jwt", bad}, false, "401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"authz", "check", "--config-dir", dir, "--to", "foo/httpbin", "-o", "json"}, tc.args...)
			out, err := run(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var res authzResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if res.Allowed != tc.allowed || !strings.Contains(out, tc.want) {
				t.Errorf("allowed=%v, want %v and %q in:\n%s", res.Allowed, tc.allowed, tc.want, out)
			}
		})
	}
	out, err := run(t, "authz", "check", "--config-dir", dir, "--to", "foo/httpbin", "--from", "foo/sleep", "--path", "/ip", "--header", "x-token=guest")
	if err != nil || !strings.Contains(out, "DECISION: DENIED (403 RBAC: access denied): denied by DENY policy ns[foo]-policy[deny-method-get]-rule[0]") {
		t.Errorf("text output: %v\n%s", err, out)
	}
	// Port 9002: no service port declares it, so the sidecar sniffs it.
	out, err = run(t, "authz", "check", "--config-dir", dir, "--to", "foo/httpbin", "--from", "foo/sleep", "--path", "/ip",
		"--header", "x-token=admin", "--port", "9002")
	if err != nil || !strings.Contains(out, "port 9002 has no known protocol, so the sidecar sniffs it") {
		t.Errorf("undeclared port: %v\n%s", err, out)
	}
	if _, err := run(t, "authz", "check", "--config-dir", dir, "--to", "foo/nope"); err == nil || !strings.Contains(err.Error(), "foo/httpbin") {
		t.Errorf("an unknown workload must be an error naming the known ones: %v", err)
	}
}
