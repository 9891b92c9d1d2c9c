package e2e

import (
	"fmt"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// matchVS has one route per match kind. Each route tags the request with
// x-route (a request header the echo backend reports), so the test can tell
// which route served it; the last route has no match and no tag. A few
// routes go to subset v2, so the destination is checked too.
const matchVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - name: uri-exact
    match: [{uri: {exact: /exact}}]
    headers: {request: {set: {x-route: uri-exact}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: uri-prefix
    match: [{uri: {prefix: /prefix}}]
    headers: {request: {set: {x-route: uri-prefix}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: uri-regex
    match: [{uri: {regex: "/re/[0-9]+"}}]
    headers: {request: {set: {x-route: uri-regex}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: ignore-case
    match: [{uri: {exact: /case}, ignoreUriCase: true}]
    headers: {request: {set: {x-route: ignore-case}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: method
    match: [{uri: {prefix: /method}, method: {exact: POST}}]
    headers: {request: {set: {x-route: method}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: authority
    match: [{uri: {prefix: /authority}, authority: {prefix: reviews.default}}]
    headers: {request: {set: {x-route: authority}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: header-exact
    match: [{uri: {prefix: /hdr}, headers: {x-exact: {exact: a}}}]
    headers: {request: {set: {x-route: header-exact}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: header-prefix
    match: [{uri: {prefix: /hdr}, headers: {x-prefix: {prefix: pre}}}]
    headers: {request: {set: {x-route: header-prefix}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: header-regex
    match: [{uri: {prefix: /hdr}, headers: {x-regex: {regex: "v[0-9]+"}}}]
    headers: {request: {set: {x-route: header-regex}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: header-present
    match: [{uri: {prefix: /hdr}, headers: {x-present: {}}}]
    headers: {request: {set: {x-route: header-present}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: without-headers
    match: [{uri: {prefix: /without}, withoutHeaders: {x-block: {}}}]
    headers: {request: {set: {x-route: without-headers}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: query-exact
    match: [{uri: {prefix: /query}, queryParams: {mode: {exact: fast}}}]
    headers: {request: {set: {x-route: query-exact}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: query-regex
    match: [{uri: {prefix: /query}, queryParams: {id: {regex: "[0-9]+"}}}]
    headers: {request: {set: {x-route: query-regex}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: scheme-https
    match: [{uri: {prefix: /scheme}, scheme: {exact: https}}]
    headers: {request: {set: {x-route: scheme-https}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: scheme-http
    match: [{uri: {prefix: /scheme}, scheme: {exact: http}}]
    headers: {request: {set: {x-route: scheme-http}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: and
    match: [{uri: {prefix: /and}, headers: {x-and: {exact: "yes"}}}]
    headers: {request: {set: {x-route: and}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: or
    match: [{uri: {exact: /or-a}}, {uri: {exact: /or-b}}]
    headers: {request: {set: {x-route: or}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: first-1
    match: [{uri: {prefix: /first}}]
    headers: {request: {set: {x-route: first-1}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: first-2
    match: [{uri: {prefix: /first/second}}]
    headers: {request: {set: {x-route: first-2}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: port-9090
    match: [{port: 9090, uri: {prefix: /port}}]
    headers: {request: {set: {x-route: port-9090}}}
    route: [{destination: {host: reviews, subset: v2, port: {number: 9090}}}]
  - name: port-9080
    match: [{port: 9080, uri: {prefix: /port}}]
    headers: {request: {set: {x-route: port-9080}}}
    route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}}]
  - name: source-labels
    match: [{uri: {prefix: /source}, sourceLabels: {app: tester}}]
    headers: {request: {set: {x-route: source-labels}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
`

// TestMatchKinds runs every HTTPMatchRequest kind against one mesh. route ""
// means the untagged default route.
func TestMatchKinds(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-reviews.yaml", matchVS)
	service(t, m, "reviews", map[string]int{"http": 9080, "http-alt": 9090}, "v1", "v2")
	tester := m.AddClient(testenv.ClientOptions{Name: "tester", Labels: map[string]string{"app": "tester"}})
	other := m.AddClient(testenv.ClientOptions{Name: "other", Labels: map[string]string{"app": "other"}})
	m.WaitReady()
	m.WaitSynced(convergeTimeout)
	// Converged once both clients reach both subsets on both ports through
	// the VirtualService.
	for _, c := range []*testenv.Client{tester, other} {
		m.WaitConverged(func() error {
			for _, p := range []struct{ method, host, path, route, version string }{
				{"GET", "reviews:9080", "/exact", "uri-exact", "v1"},
				{"POST", "reviews:9080", "/method", "method", "v2"},
				{"GET", "reviews:9090", "/port", "port-9090", "v2"},
			} {
				r, err := c.Request(p.method, p.host, p.path, nil, nil)
				if err != nil {
					return err
				}
				if err := servedBy(r, "reviews", p.version); err != nil {
					return fmt.Errorf("%s: %s %s%s: %w", c.Name, p.method, p.host, p.path, err)
				}
				if v, _ := headerValue(r, "x-route"); v != p.route {
					return fmt.Errorf("%s: %s %s%s: route %q, want %q", c.Name, p.method, p.host, p.path, v, p.route)
				}
			}
			return nil
		}, convergeTimeout)
	}
	requireSyncedNoNACK(t, m)

	type req struct {
		client  *testenv.Client
		method  string
		host    string
		path    string
		headers map[string]string
	}
	cases := []struct {
		name    string
		req     req
		route   string
		version string
	}{
		{"uri exact", req{path: "/exact"}, "uri-exact", "v1"},
		{"uri exact ignores the query", req{path: "/exact?x=1"}, "uri-exact", "v1"},
		{"uri exact is not a prefix", req{path: "/exact/more"}, "", "v1"},
		{"uri prefix", req{path: "/prefix/a/b"}, "uri-prefix", "v1"},
		{"uri prefix is a string prefix", req{path: "/prefixed"}, "uri-prefix", "v1"},
		{"uri regex", req{path: "/re/123"}, "uri-regex", "v1"},
		{"uri regex must match all of the path", req{path: "/re/123/x"}, "", "v1"},
		{"uri regex no match", req{path: "/re/abc"}, "", "v1"},
		{"ignoreUriCase upper", req{path: "/CASE"}, "ignore-case", "v1"},
		{"ignoreUriCase mixed", req{path: "/Case"}, "ignore-case", "v1"},
		{"method POST", req{method: "POST", path: "/method"}, "method", "v2"},
		{"method GET does not match", req{path: "/method"}, "", "v1"},
		{"authority prefix", req{host: "reviews.default.svc.cluster.local:9080", path: "/authority"}, "authority", "v1"},
		{"authority no match", req{host: "reviews:9080", path: "/authority"}, "", "v1"},
		{"header exact", req{path: "/hdr", headers: map[string]string{"x-exact": "a"}}, "header-exact", "v1"},
		{"header exact is not a prefix", req{path: "/hdr", headers: map[string]string{"x-exact": "ab"}}, "", "v1"},
		{"header prefix", req{path: "/hdr", headers: map[string]string{"x-prefix": "prefix-x"}}, "header-prefix", "v1"},
		{"header prefix no match", req{path: "/hdr", headers: map[string]string{"x-prefix": "nope"}}, "", "v1"},
		{"header regex", req{path: "/hdr", headers: map[string]string{"x-regex": "v12"}}, "header-regex", "v1"},
		{"header regex must match all of the value", req{path: "/hdr", headers: map[string]string{"x-regex": "xv12"}}, "", "v1"},
		{"header presence", req{path: "/hdr", headers: map[string]string{"x-present": "anything"}}, "header-present", "v1"},
		{"header absent", req{path: "/hdr"}, "", "v1"},
		{"header names are case-insensitive", req{path: "/hdr", headers: map[string]string{"X-EXACT": "a"}}, "header-exact", "v1"},
		{"withoutHeaders header missing", req{path: "/without"}, "without-headers", "v1"},
		{"withoutHeaders header present", req{path: "/without", headers: map[string]string{"x-block": "1"}}, "", "v1"},
		{"queryParams exact", req{path: "/query?mode=fast"}, "query-exact", "v1"},
		{"queryParams exact no match", req{path: "/query?mode=slow"}, "", "v1"},
		{"queryParams regex", req{path: "/query?id=42"}, "query-regex", "v1"},
		{"queryParams regex no match", req{path: "/query?id=4x"}, "", "v1"},
		{"scheme http", req{path: "/scheme"}, "scheme-http", "v1"},
		{"AND within a block: both hold", req{path: "/and", headers: map[string]string{"x-and": "yes"}}, "and", "v1"},
		{"AND within a block: header missing", req{path: "/and"}, "", "v1"},
		{"AND within a block: header differs", req{path: "/and", headers: map[string]string{"x-and": "no"}}, "", "v1"},
		{"OR across blocks: first", req{path: "/or-a"}, "or", "v1"},
		{"OR across blocks: second", req{path: "/or-b"}, "or", "v1"},
		{"OR across blocks: neither", req{path: "/or-c"}, "", "v1"},
		{"first match wins", req{path: "/first/second"}, "first-1", "v1"},
		{"port 9090", req{host: "reviews:9090", path: "/port"}, "port-9090", "v2"},
		{"port 9080", req{host: "reviews:9080", path: "/port"}, "port-9080", "v1"},
		{"sourceLabels match", req{client: tester, path: "/source"}, "source-labels", "v2"},
		{"sourceLabels other client", req{client: other, path: "/source"}, "", "v1"},
		{"default route", req{path: "/nothing-special"}, "", "v1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.req.client
			if c == nil {
				c = tester
			}
			method := tc.req.method
			if method == "" {
				method = "GET"
			}
			host := tc.req.host
			if host == "" {
				host = "reviews:9080"
			}
			r, err := c.Request(method, host, tc.req.path, tc.req.headers, nil)
			if err != nil {
				t.Fatalf("%s %s%s from %s: %v", method, host, tc.req.path, c.Name, err)
			}
			if err := servedBy(r, "reviews", tc.version); err != nil {
				t.Fatalf("%s %s%s from %s headers %v: %v", method, host, tc.req.path, c.Name, tc.req.headers, err)
			}
			got, _ := headerValue(r, "x-route")
			if got != tc.route {
				t.Errorf("%s %s%s from %s headers %v: served by route %q, want %q (response %s)",
					method, host, tc.req.path, c.Name, tc.req.headers, got, tc.route, r)
			}
		})
	}
}
