package analysis

import (
	"fmt"
	"strings"
	"testing"
)

// Table tests of sluice's own analyzers (SLU codes, issue 13 point 2):
// each has rows that must report and rows that must not.

func httpRoutes(routes ...string) string {
	return "  hosts: [reviews]\n  http:\n" + strings.Join(routes, "")
}

func match(m string) string {
	return "  - match: [" + m + "]\n    route: [{destination: {host: reviews}}]\n"
}

const catchAll = "  - route: [{destination: {host: reviews}}]\n"

func TestShadowedRouteAnalyzer(t *testing.T) {
	const a = "sluice.ShadowedRouteAnalyzer"
	shadowed := func(later, earlier string) []string {
		return []string{fmt.Sprintf("SLU0001 VirtualService default/r: HTTP route %s can never match: route %s before it matches every request it would. Move it above that route, or narrow the earlier route's match.", later, earlier)}
	}
	runAnalyzerTable(t, a, []analyzerCase{
		{"catch-all first", vs("r", httpRoutes(catchAll, match("{uri: {prefix: /api}}"))), shadowed("http[1]", "http[0]")},
		{"catch-all last", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), catchAll)), nil},
		{"prefix covers longer prefix", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), match("{uri: {prefix: /api/v2}}"))), shadowed("http[1]", "http[0]")},
		{"prefix covers exact", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), match("{uri: {exact: /api/users}}"))), shadowed("http[1]", "http[0]")},
		{"longer prefix first", vs("r", httpRoutes(match("{uri: {prefix: /api/v2}}"), match("{uri: {prefix: /api}}"))), nil},
		{"different exact", vs("r", httpRoutes(match("{uri: {exact: /a}}"), match("{uri: {exact: /b}}"))), nil},
		{"earlier narrower by header", vs("r", httpRoutes(match("{uri: {prefix: /}, headers: {x-user: {exact: jason}}}"), match("{uri: {prefix: /api}}"))), nil},
		{"same method and headers, later adds a condition", vs("r", httpRoutes(
			match("{method: {exact: GET}, headers: {x-user: {exact: jason}}}"),
			match("{method: {exact: GET}, headers: {x-user: {exact: jason}, x-v: {exact: '2'}}, uri: {prefix: /x}}"))), shadowed("http[1]", "http[0]")},
		{"different method", vs("r", httpRoutes(match("{method: {exact: GET}}"), match("{method: {exact: POST}}"))), nil},
		{"regex is not compared with prefix", vs("r", httpRoutes(match("{uri: {regex: '/api.*'}}"), match("{uri: {prefix: /api}}"))), nil},
		{"every match of the later route covered", vs("r", httpRoutes(
			match("{uri: {prefix: /a}}, {uri: {prefix: /b}}"), match("{uri: {exact: /a/1}}, {uri: {prefix: /b/2}}"))), shadowed("http[1]", "http[0]")},
		{"one match of the later route not covered", vs("r", httpRoutes(
			match("{uri: {prefix: /a}}"), match("{uri: {exact: /a/1}}, {uri: {prefix: /c}}"))), nil},
		{"case-sensitive earlier does not cover case-insensitive later", vs("r", httpRoutes(
			match("{uri: {prefix: /api}}"), match("{uri: {prefix: /api/v2}, ignoreUriCase: true}"))), nil},
		{"case-insensitive earlier covers", vs("r", httpRoutes(
			match("{uri: {prefix: /API}, ignoreUriCase: true}"), match("{uri: {prefix: /api/v2}}"))), shadowed("http[1]", "http[0]")},
		{"header presence covered by exact", vs("r", httpRoutes(match("{headers: {x-a: {}}}"), match("{headers: {x-a: {exact: b}}}"))), shadowed("http[1]", "http[0]")},
		{"without_headers in earlier only", vs("r", httpRoutes(match("{withoutHeaders: {x-a: {}}}"), match("{uri: {prefix: /}}"))), nil},
		{"named routes", vs("r", httpRoutes("  - name: all\n    route: [{destination: {host: reviews}}]\n",
			"  - name: api\n    match: [{uri: {prefix: /api}}]\n    route: [{destination: {host: reviews}}]\n")),
			shadowed(`http[1] ("api")`, `http[0] ("all")`)},
		{"port differs", vs("r", httpRoutes(match("{port: 80}"), match("{port: 8080}"))), nil},
	})
}

func TestDuplicateGatewayHostAnalyzer(t *testing.T) {
	gwVS := func(name, gateways, hosts string) string {
		return vs(name, "  hosts: ["+hosts+"]\n  gateways: ["+gateways+"]\n  http:\n  - route: [{destination: {host: reviews}}]\n")
	}
	const text = "SLU0002 VirtualService default/%s: The VirtualServices default/a,default/b define the same host %s on gateway %s: their routes are merged in an undefined order. Merge them into one VirtualService, or give each its own host."
	runAnalyzerTable(t, "sluice.DuplicateGatewayHostAnalyzer", []analyzerCase{
		{"same host, same gateway", gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "shop.example.com"), []string{
			fmt.Sprintf(text, "a", "shop.example.com", "gw/ingress"), fmt.Sprintf(text, "b", "shop.example.com", "gw/ingress"),
		}},
		{"short gateway name and namespaced one agree", gwVS("a", "ingress", "shop.example.com") + gwVS("b", "default/ingress", "shop.example.com"), []string{
			fmt.Sprintf(text, "a", "shop.example.com", "default/ingress"), fmt.Sprintf(text, "b", "shop.example.com", "default/ingress"),
		}},
		{"same host, other gateways", gwVS("a", "gw/one", "shop.example.com") + gwVS("b", "gw/two", "shop.example.com"), nil},
		{"other hosts, same gateway", gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "api.example.com"), nil},
		{"mesh gateway is IST0109's", gwVS("a", "mesh", "shop.example.com") + gwVS("b", "mesh", "shop.example.com"), nil},
		{"one VirtualService", gwVS("a", "gw/ingress", "shop.example.com"), nil},
	})
}

func TestRouteWeightsAnalyzer(t *testing.T) {
	split := func(w1, w2 int) string {
		return fmt.Sprintf("  hosts: [reviews]\n  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: %d}\n    - {destination: {host: reviews, subset: v2}, weight: %d}\n", w1, w2)
	}
	runAnalyzerTable(t, "sluice.RouteWeightsAnalyzer", []analyzerCase{
		{"90+20", vs("r", split(90, 20)), []string{
			"SLU0003 VirtualService default/r: The destination weights of HTTP route http[0] add up to 110, not 100: Istio scales them, so the traffic split is not the one written. Set weights that add up to 100.",
		}},
		{"75+25", vs("r", split(75, 25)), nil},
		{"tcp 30+30", vs("r", "  hosts: [db]\n  tcp:\n  - route:\n    - {destination: {host: db, port: {number: 5432}}, weight: 30}\n    - {destination: {host: db2, port: {number: 5432}}, weight: 30}\n"), []string{
			"SLU0003 VirtualService default/r: The destination weights of TCP route tcp[0] add up to 60, not 100: Istio scales them, so the traffic split is not the one written. Set weights that add up to 100.",
		}},
		{"single destination without weight", vs("r", httpRoutes(catchAll)), nil},
		{"100+0", vs("r", split(100, 0)), nil},
	})
}

func TestRetryTimeoutAnalyzer(t *testing.T) {
	route := func(extra string) string {
		return "  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n" + extra
	}
	runAnalyzerTable(t, "sluice.RetryTimeoutAnalyzer", []analyzerCase{
		{"3 retries of 2s in 5s", vs("r", route("    timeout: 5s\n    retries: {attempts: 3, perTryTimeout: 2s}\n")), []string{
			"SLU0006 VirtualService default/r: HTTP route http[0]: the first try and 3 retries, each allowed perTryTimeout 2s, need up to 8s, more than the route timeout 5s: the later retries never get their time. Lower retries.attempts or perTryTimeout, or raise timeout.",
		}},
		{"2 retries of 1s in 3s fit", vs("r", route("    timeout: 3s\n    retries: {attempts: 2, perTryTimeout: 1s}\n")), nil},
		{"no timeout", vs("r", route("    retries: {attempts: 3, perTryTimeout: 2s}\n")), nil},
		{"no perTryTimeout", vs("r", route("    timeout: 1s\n    retries: {attempts: 3}\n")), nil},
		{"retries off", vs("r", route("    timeout: 1s\n    retries: {attempts: 0, perTryTimeout: 2s}\n")), nil},
	})
}
