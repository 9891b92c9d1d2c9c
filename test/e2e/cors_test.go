package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// corsVS gives web two CORS policies: /api answers preflights from origins
// it does not allow (IGNORE), /open forwards them (Istio's default).
const corsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /api}}]
    corsPolicy:
      allowOrigins:
      - exact: https://app.example.com
      - regex: 'https://[a-z0-9-]+\.preview\.example\.com'
      allowMethods: [GET, POST, DELETE]
      allowHeaders: [authorization, content-type]
      exposeHeaders: [x-request-id]
      maxAge: 1h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /open}}]
    corsPolicy:
      allowOrigins: [{prefix: "https://"}]
      allowMethods: ["*"]
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
`

// TestCORS sends what a browser sends (preflights, then the actual
// requests) through a sidecar, with real control plane, proxy and echo
// processes, and checks who answers and with which CORS headers; then an
// edit of the allowed origins takes effect.
func TestCORS(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-web.yaml", corsVS)
	service(t, m, "web", map[string]int{"http": 8080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "browser"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	const host, app = "web:8080", "https://app.example.com"
	preflight := func(origin, method, headers string) map[string]string {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	send := func(method, path string, h map[string]string) *testenv.Response {
		t.Helper()
		r, err := c.Request(method, host, path, h, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r
	}
	m.WaitConverged(func() error {
		if r := send("OPTIONS", "/api/items", preflight(app, "POST", "")); r.Status != 200 || r.Served() {
			return fmt.Errorf("preflight not answered by the proxy yet: %s", r)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)

	expect := func(t *testing.T, r *testenv.Response, want map[string]string) {
		t.Helper()
		for k, v := range want {
			got, ok := r.Header[k]
			switch {
			case v == "" && ok:
				t.Errorf("%s: %q, want none (%s)", k, got, r)
			case v != "" && (len(got) != 1 || got[0] != v):
				t.Errorf("%s: %q, want %q (%s)", k, got, v, r)
			}
		}
	}
	t.Run("preflight from an allowed origin is answered by the proxy", func(t *testing.T) {
		r := send("OPTIONS", "/api/items", preflight(app, "DELETE", "authorization"))
		if r.Status != 200 || r.Served() || len(r.Body) != 0 {
			t.Fatalf("want an empty 200 from the proxy, got %s", r)
		}
		expect(t, r, map[string]string{
			"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods": "GET,POST,DELETE", "Access-Control-Allow-Headers": "authorization,content-type",
			"Access-Control-Max-Age": "3600", "Access-Control-Expose-Headers": "x-request-id",
		})
	})
	t.Run("preflight from a regex-allowed origin", func(t *testing.T) {
		origin := "https://pr-42.preview.example.com"
		r := send("OPTIONS", "/api/items", preflight(origin, "GET", ""))
		if r.Served() {
			t.Fatalf("reached the backend: %s", r)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": origin})
	})
	t.Run("preflight from another origin, IGNORE: answered without allow-origin", func(t *testing.T) {
		r := send("OPTIONS", "/api/items", preflight("https://evil.example.net", "DELETE", ""))
		if r.Status != 200 || r.Served() {
			t.Fatalf("want 200 from the proxy, got %s", r)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Expose-Headers": "",
			"Access-Control-Allow-Methods": "GET,POST,DELETE"})
	})
	t.Run("preflight from another origin, FORWARD: the backend gets it", func(t *testing.T) {
		r := send("OPTIONS", "/open/x", preflight("http://plain.example.com", "PUT", ""))
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Echo.Request.Method != "OPTIONS" {
			t.Errorf("backend saw %s, want the OPTIONS preflight", r.Echo.Request.Method)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""})
	})
	t.Run("allowMethods * echoes the requested method", func(t *testing.T) {
		r := send("OPTIONS", "/open/x", preflight("https://any.example.com", "PATCH", ""))
		if r.Served() {
			t.Fatalf("reached the backend: %s", r)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": "https://any.example.com", "Access-Control-Allow-Methods": "PATCH",
			"Access-Control-Allow-Credentials": ""})
	})
	t.Run("actual request from an allowed origin", func(t *testing.T) {
		r := send("POST", "/api/items", map[string]string{"Origin": app, "Authorization": "Bearer x"})
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if o, _ := headerValue(r, "Origin"); o != app {
			t.Errorf("the backend saw Origin %q, want it passed on", o)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers": "x-request-id", "Access-Control-Allow-Methods": ""})
	})
	t.Run("actual request from another origin gets no CORS headers", func(t *testing.T) {
		r := send("GET", "/api/items", map[string]string{"Origin": "https://evil.example.net"})
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": ""})
	})
	t.Run("no Origin, no CORS", func(t *testing.T) {
		r := send("OPTIONS", "/api/items", map[string]string{"Access-Control-Request-Method": "GET"})
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		expect(t, r, map[string]string{"Access-Control-Allow-Origin": ""})
	})
	t.Run("live edit of the allowed origins", func(t *testing.T) {
		const next = "https://next.example.com"
		m.WriteConfig("vs-web.yaml", strings.Replace(corsVS, "exact: "+app, "exact: "+next, 1))
		m.WaitConverged(func() error {
			if r := send("OPTIONS", "/api/items", preflight(next, "GET", "")); r.Header.Get("Access-Control-Allow-Origin") != next {
				return fmt.Errorf("the new origin is not allowed yet: %s", r)
			}
			return nil
		}, convergeTimeout)
		r := send("OPTIONS", "/api/items", preflight(app, "GET", ""))
		if r.Served() || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("the old origin must no longer be allowed: %s", r)
		}
		requireSyncedNoNACK(t, m)
	})
}
