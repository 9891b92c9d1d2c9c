package e2e

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// actionsVS exercises what a route does besides choosing a destination:
// rewrites, redirects, direct responses and header manipulation.
const actionsVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /auth}}]
    rewrite: {authority: rewritten.example}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /rx/}}]
    rewrite:
      uriRegexRewrite: {match: '^/rx/([^/]+)/(.*)$', rewrite: '/\2/\1'}
    route: [{destination: {host: web}}]
  - match: [{uri: {exact: /r301}}]
    redirect: {uri: /target}
  - match: [{uri: {exact: /r302}}]
    redirect: {uri: /target, redirectCode: 302}
  - match: [{uri: {exact: /r308}}]
    redirect: {uri: /target, redirectCode: 308}
  - match: [{uri: {exact: /rauth}}]
    redirect: {authority: other.example}
  - match: [{uri: {exact: /rscheme}}]
    redirect: {scheme: https}
  - match: [{uri: {exact: /rport}}]
    redirect: {port: 8443}
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {prefix: /headers}}]
    headers:
      request:
        set: {x-set: route-set}
        add: {x-add: route-add}
        remove: [x-remove]
      response:
        set: {x-resp-set: resp-set}
        add: {x-resp-add: resp-add}
        remove: [x-echo-pod]
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /dest-headers}}]
    route:
    - destination: {host: web}
      headers:
        request: {set: {x-dest: dest-set}}
        response: {set: {x-dest-resp: dest-resp}}
  - route: [{destination: {host: web}}]
`

// TestRouteActions checks rewrite, redirect, directResponse and header
// operations on one mesh, by what the echo backend and the client see.
func TestRouteActions(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-web.yaml", actionsVS)
	service(t, m, "web", map[string]int{"http": 8080}, "v1")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	m.WaitConverged(func() error {
		r, err := c.Get("web:8080", "/direct", nil)
		if err != nil {
			return err
		}
		if r.Status != 418 {
			return fmt.Errorf("/direct: %s", r)
		}
		return servedBy(get(t, c, "web:8080", "/", nil), "web", "v1")
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)
	const host = "web:8080"

	t.Run("rewrite uri prefix", func(t *testing.T) {
		for path, want := range map[string]string{"/old/x?q=1": "/new/x?q=1", "/old": "/new"} {
			r := get(t, c, host, path, nil)
			if err := servedBy(r, "web", "v1"); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if r.Echo.Request.Path != want {
				t.Errorf("%s: backend saw path %q, want %q", path, r.Echo.Request.Path, want)
			}
		}
	})
	t.Run("rewrite authority", func(t *testing.T) {
		r := get(t, c, host, "/auth/x", nil)
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Echo.Request.Host != "rewritten.example" || r.Echo.Request.Path != "/auth/x" {
			t.Errorf("backend saw host %q path %q, want rewritten.example /auth/x", r.Echo.Request.Host, r.Echo.Request.Path)
		}
	})
	t.Run("uriRegexRewrite", func(t *testing.T) {
		r := get(t, c, host, "/rx/a/b/c", nil)
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if r.Echo.Request.Path != "/b/c/a" {
			t.Errorf("backend saw path %q, want /b/c/a", r.Echo.Request.Path)
		}
	})

	redirects := []struct {
		path                   string
		status                 int
		scheme, hostname, port string // "" = not checked
		locPath                string
	}{
		{"/r301", 301, "http", "web", "8080", "/target"},
		{"/r302", 302, "http", "web", "8080", "/target"},
		{"/r308", 308, "http", "web", "8080", "/target"},
		{"/rauth", 301, "http", "other.example", "", "/rauth"},
		{"/rscheme", 301, "https", "web", "", "/rscheme"},
		{"/rport", 301, "http", "web", "8443", "/rport"},
	}
	for _, rd := range redirects {
		t.Run("redirect "+rd.path, func(t *testing.T) {
			r := get(t, c, host, rd.path, nil)
			if r.Status != rd.status {
				t.Fatalf("status %d, want %d: %s", r.Status, rd.status, r)
			}
			if r.Served() {
				t.Errorf("a redirect reached the backend: %s", r)
			}
			loc := r.Header.Get("Location")
			u, err := url.Parse(loc)
			if err != nil || !u.IsAbs() {
				t.Fatalf("Location %q is not an absolute URL (%v)", loc, err)
			}
			if u.Scheme != rd.scheme || u.Hostname() != rd.hostname || u.Path != rd.locPath {
				t.Errorf("Location %q: want scheme %s host %s path %s", loc, rd.scheme, rd.hostname, rd.locPath)
			}
			if rd.port != "" && u.Port() != rd.port {
				t.Errorf("Location %q: port %q, want %q", loc, u.Port(), rd.port)
			}
		})
	}

	t.Run("directResponse", func(t *testing.T) {
		r := get(t, c, host, "/direct", nil)
		if r.Status != 418 || string(r.Body) != "short and stout" {
			t.Errorf("got %s, want 418 with body %q", r, "short and stout")
		}
		if r.Served() {
			t.Errorf("a direct response reached the backend: %s", r)
		}
	})

	t.Run("route-level headers", func(t *testing.T) {
		r := get(t, c, host, "/headers", map[string]string{"x-set": "client", "x-add": "client", "x-remove": "gone"})
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"x-set": "route-set", "x-add": "client,route-add"}
		for name, v := range want {
			if got, ok := headerValue(r, name); !ok || got != v {
				t.Errorf("backend saw %s=%q (present %v), want %q", name, got, ok, v)
			}
		}
		if got, ok := headerValue(r, "x-remove"); ok {
			t.Errorf("backend saw x-remove=%q, want it removed", got)
		}
		if got := r.Header.Get("X-Resp-Set"); got != "resp-set" {
			t.Errorf("response X-Resp-Set=%q, want resp-set", got)
		}
		if got := r.Header.Values("X-Resp-Add"); len(got) != 1 || got[0] != "resp-add" {
			t.Errorf("response X-Resp-Add=%q, want [resp-add]", got)
		}
		if got := r.Header.Values("X-Echo-Pod"); len(got) != 0 {
			t.Errorf("response X-Echo-Pod=%q, want it removed", got)
		}
		if got := r.Header.Get("X-Echo-Service"); got != "web" {
			t.Errorf("response X-Echo-Service=%q, want web (only x-echo-pod is removed)", got)
		}
	})

	t.Run("destination-level headers", func(t *testing.T) {
		r := get(t, c, host, "/dest-headers", nil)
		if err := servedBy(r, "web", "v1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := headerValue(r, "x-dest"); got != "dest-set" {
			t.Errorf("backend saw x-dest=%q, want dest-set", got)
		}
		if got := r.Header.Get("X-Dest-Resp"); got != "dest-resp" {
			t.Errorf("response X-Dest-Resp=%q, want dest-resp", got)
		}
		// Headers of another route do not leak into this one.
		if got, ok := headerValue(r, "x-set"); ok {
			t.Errorf("backend saw x-set=%q from another route", got)
		}
	})
}
