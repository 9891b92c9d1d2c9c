package httpproxy_test

import (
	"io"
	"net/http"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// corsRoutes are VirtualService routes with CORS policies, generated and
// compiled as the control plane and the proxy do.
const corsRoutes = `  - match: [{uri: {prefix: /full}}]
    corsPolicy:
      allowOrigins:
      - exact: https://app.example.com
      - prefix: https://dev.
      - regex: 'https://[a-z]+\.example\.org'
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-request-id]
      maxAge: 10m
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /fwd}}]
    corsPolicy:
      allowOrigins: [{exact: https://app.example.com}]
      allowMethods: [PUT]
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /any}}]
    corsPolicy:
      allowOrigins: [{exact: "*"}]
      allowMethods: ["*"]
      allowHeaders: ["*"]
      allowCredentials: false
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /legacy}}]
    corsPolicy:
      allowOrigin: [https://old.example.com]
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /moved}}]
    redirect: {uri: /full}
    corsPolicy:
      allowOrigins: [{exact: https://app.example.com}]
      exposeHeaders: [location]
  - match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    corsPolicy:
      allowOrigins: [{exact: https://app.example.com}]
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
`

// corsBackend answers with CORS headers of its own, which the proxy
// replaces for an allowed origin and leaves alone otherwise.
func corsBackend(_ int64, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "upstream")
	w.Header().Set("Access-Control-Expose-Headers", "x-upstream")
	io.WriteString(w, "ok\n")
}

const absent = "<absent>"

func TestCORS(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", corsBackend)
	m := newMesh(t, service("web", web)+vs(corsRoutes))
	m.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	const app = "https://app.example.com"
	pre := func(origin, method string) map[string]string {
		h := map[string]string{"Access-Control-Request-Method": method}
		if origin != "" {
			h["Origin"] = origin
		}
		return h
	}
	cases := []struct {
		name         string
		method, path string
		hdr          map[string]string
		status       int
		upstream     bool              // the backend got the request
		want         map[string]string // response headers; absent for none
		count        string            // "valid" / "invalid": the cors stat it adds to
	}{
		{name: "preflight exact origin", method: "OPTIONS", path: "/full", count: "valid",
			hdr:    map[string]string{"Origin": app, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-token"},
			status: 200, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "GET,POST", "Access-Control-Allow-Headers": "x-token,content-type",
				"Access-Control-Max-Age": "600", "Access-Control-Expose-Headers": "x-request-id", "Vary": absent,
			}},
		{name: "preflight prefix origin", method: "OPTIONS", path: "/full", hdr: pre("https://dev.local:3000", "GET"), count: "valid",
			status: 200, want: map[string]string{"Access-Control-Allow-Origin": "https://dev.local:3000"}},
		{name: "preflight regex origin is whole-string", method: "OPTIONS", path: "/full", hdr: pre("https://shop.example.org", "GET"), count: "valid",
			status: 200, want: map[string]string{"Access-Control-Allow-Origin": "https://shop.example.org"}},
		{name: "preflight origin not allowed, IGNORE: answered without allow-origin", method: "OPTIONS", path: "/full",
			hdr: pre("https://shop.example.org.evil", "GET"), count: "invalid", status: 200, want: map[string]string{
				"Access-Control-Allow-Origin": absent, "Access-Control-Expose-Headers": absent,
				"Access-Control-Allow-Credentials": "true", "Access-Control-Allow-Methods": "GET,POST", "Access-Control-Max-Age": "600",
			}},
		{name: "preflight origin not allowed, FORWARD: the upstream answers", method: "OPTIONS", path: "/fwd",
			hdr: pre("https://evil.example.com", "PUT"), count: "invalid", status: 200, upstream: true,
			want: map[string]string{"Access-Control-Allow-Origin": "upstream", "Access-Control-Allow-Methods": absent}},
		{name: "preflight allowed origin, FORWARD: answered", method: "OPTIONS", path: "/fwd", hdr: pre(app, "PUT"), count: "valid",
			status: 200, want: map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Allow-Methods": "PUT",
				"Access-Control-Allow-Credentials": absent, "Access-Control-Max-Age": absent}},
		{name: "OPTIONS without Access-Control-Request-Method is an actual request", method: "OPTIONS", path: "/full",
			hdr: map[string]string{"Origin": app}, count: "valid", status: 200, upstream: true,
			want: map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Allow-Methods": absent}},
		{name: "preflight without Origin is not CORS", method: "OPTIONS", path: "/full", hdr: pre("", "GET"),
			status: 200, upstream: true, want: map[string]string{"Access-Control-Allow-Origin": "upstream"}},
		{name: "empty Origin is not CORS", method: "GET", path: "/full", hdr: map[string]string{"Origin": ""},
			status: 200, upstream: true, want: map[string]string{"Access-Control-Allow-Origin": "upstream"}},
		{name: "actual request, allowed origin: headers replaced", method: "GET", path: "/full", hdr: map[string]string{"Origin": app},
			count: "valid", status: 200, upstream: true, want: map[string]string{
				"Access-Control-Allow-Origin": app, "Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers": "x-request-id", "Access-Control-Max-Age": absent, "Vary": absent,
			}},
		{name: "actual request, origin not allowed: left alone", method: "POST", path: "/full",
			hdr: map[string]string{"Origin": "https://other.example.com"}, count: "invalid", status: 200, upstream: true,
			want: map[string]string{"Access-Control-Allow-Origin": "upstream", "Access-Control-Expose-Headers": "x-upstream"}},
		{name: "route without policy", method: "OPTIONS", path: "/plain", hdr: pre(app, "GET"), status: 200, upstream: true,
			want: map[string]string{"Access-Control-Allow-Origin": "upstream"}},
		{name: "allowed origin \"*\" allows any, methods and headers echoed", method: "OPTIONS", path: "/any", count: "valid",
			hdr:    map[string]string{"Origin": "https://x.test:8443", "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "x-a, x-b"},
			status: 200, want: map[string]string{"Access-Control-Allow-Origin": "https://x.test:8443", "Access-Control-Allow-Methods": "DELETE",
				"Access-Control-Allow-Headers": "x-a, x-b", "Access-Control-Allow-Credentials": absent}},
		{name: "headers \"*\" without Access-Control-Request-Headers: none", method: "OPTIONS", path: "/any", hdr: pre("https://y.test", "GET"),
			count: "valid", status: 200, want: map[string]string{"Access-Control-Allow-Origin": "https://y.test", "Access-Control-Allow-Headers": absent}},
		{name: "deprecated allowOrigin", method: "GET", path: "/legacy", hdr: map[string]string{"Origin": "https://old.example.com"},
			count: "valid", status: 200, upstream: true, want: map[string]string{"Access-Control-Allow-Origin": "https://old.example.com"}},
		{name: "the proxy's own answers are marked too (redirect)", method: "GET", path: "/moved", hdr: map[string]string{"Origin": app},
			count: "valid", status: 301, want: map[string]string{"Access-Control-Allow-Origin": app, "Access-Control-Expose-Headers": "location"}},
		{name: "a fault aborts before CORS (Istio's filter order)", method: "OPTIONS", path: "/broken", hdr: pre(app, "GET"),
			status: 503, want: map[string]string{"Access-Control-Allow-Origin": absent}},
	}
	wantValid, wantInvalid := uint64(0), uint64(0)
	for _, tc := range cases {
		before := web.count.Load()
		a := m.do(tc.method, "web:8080", tc.path, nil, tc.hdr)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d (%v %q)", tc.name, a.status, tc.status, a.header, a.body)
		}
		if got := web.count.Load() > before; got != tc.upstream {
			t.Errorf("%s: reached the backend = %v, want %v", tc.name, got, tc.upstream)
		}
		for k, v := range tc.want {
			vals, ok := a.header[http.CanonicalHeaderKey(k)]
			switch {
			case v == absent && ok:
				t.Errorf("%s: %s: %q, want none", tc.name, k, vals)
			case v != absent && (len(vals) != 1 || vals[0] != v):
				t.Errorf("%s: %s: %q, want %q", tc.name, k, vals, v)
			}
		}
		if !tc.upstream && tc.status == 200 && (a.body != "" || a.header.Get("X-Sluice-Reason") == "") {
			t.Errorf("%s: a preflight answer has no body and says why: body %q, reason %q", tc.name, a.body, a.header.Get("X-Sluice-Reason"))
		}
		switch tc.count {
		case "valid":
			wantValid++
		case "invalid":
			wantInvalid++
		}
	}
	if v, i := m.stat("http.outbound.cors.origin_valid"), m.stat("http.outbound.cors.origin_invalid"); v != wantValid || i != wantInvalid {
		t.Errorf("cors.origin_valid %d, origin_invalid %d; want %d, %d", v, i, wantValid, wantInvalid)
	}
}

// TestCORSFilterPlacement: the routes' policies apply only where the CORS
// filter is in the connection manager, and before the fault when the chain
// puts it there: then a preflight is answered before any fault, and a
// fault's abort of an allowed origin's request carries the CORS headers.
func TestCORSFilterPlacement(t *testing.T) {
	t.Parallel()
	web := newBackend(t, "web", corsBackend)
	yaml := service("web", web) + vs(corsRoutes)
	filters := func(order ...string) func(*xdsgen.Resources) {
		return func(res *xdsgen.Resources) {
			for _, l := range res.Listeners {
				for _, fc := range l.FilterChains {
					for _, f := range fc.Filters {
						var m hcm.HttpConnectionManager
						if f.GetTypedConfig().UnmarshalTo(&m) != nil {
							continue
						}
						byName := map[string]*hcm.HttpFilter{}
						for _, hf := range m.HttpFilters {
							byName[hf.Name] = hf
						}
						m.HttpFilters = nil
						for _, n := range order {
							m.HttpFilters = append(m.HttpFilters, byName[n])
						}
						a, err := anypb.New(&m)
						if err != nil {
							t.Fatal(err)
						}
						f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
					}
				}
			}
		}
	}
	const app = "https://app.example.com"
	preflight := map[string]string{"Origin": app, "Access-Control-Request-Method": "GET"}

	without := newMeshEdited(t, yaml, filters(xdsgen.FaultFilter, xdsgen.RouterFilter))
	if a := without.do("GET", "web:8080", "/full", nil, map[string]string{"Origin": app}); a.header.Get("Access-Control-Allow-Origin") != "upstream" {
		t.Errorf("without the cors filter the route's policy must not apply: %v", a.header)
	}
	if a := without.do("OPTIONS", "web:8080", "/full", nil, preflight); a.header.Get("X-Backend") != "web" {
		t.Errorf("without the cors filter a preflight goes upstream: %d %v", a.status, a.header)
	}

	first := newMeshEdited(t, yaml, filters(xdsgen.CorsFilter, xdsgen.FaultFilter, xdsgen.RouterFilter))
	if a := first.do("OPTIONS", "web:8080", "/broken", nil, preflight); a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("cors before fault: the preflight is answered before the abort: %d %v", a.status, a.header)
	}
	if a := first.do("GET", "web:8080", "/broken", nil, map[string]string{"Origin": app}); a.status != 503 || a.header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("cors before fault: the abort carries the CORS headers: %d %v", a.status, a.header)
	}
}
