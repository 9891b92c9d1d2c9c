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
		{"catch-all first is IST0130's", vs("r", httpRoutes(catchAll, match("{uri: {prefix: /api}}"))), nil},
		{"empty match first", vs("r", httpRoutes(match("{}"), match("{uri: {prefix: /api}}"))), shadowed("http[1]", "http[0]")},
		{"catch-all last", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), catchAll)), nil},
		{"prefix covers longer prefix is IST0131's", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), match("{uri: {prefix: /api/v2}}"))), nil},
		{"prefix without method covers longer prefix with one", vs("r", httpRoutes(match("{uri: {prefix: /api}}"), match("{uri: {prefix: /api/v2}, method: {exact: POST}}"))), shadowed("http[1]", "http[0]")},
		{"identical match is IST0130's", vs("r", httpRoutes(match("{uri: {exact: /a}}"), match("{uri: {exact: /a}}"))), nil},
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
		{"named routes", vs("r", httpRoutes("  - name: all\n    match: [{uri: {prefix: /}}]\n    route: [{destination: {host: reviews}}]\n",
			"  - name: api\n    match: [{uri: {exact: /api/users}}]\n    route: [{destination: {host: reviews}}]\n")),
			shadowed(`http[1] ("api")`, `http[0] ("all")`)},
		{"port differs", vs("r", httpRoutes(match("{port: 80}"), match("{port: 8080}"))), nil},
	})
}

func TestDuplicateGatewayHostAnalyzer(t *testing.T) {
	gwVS := func(name, gateways, hosts string) string {
		return vs(name, "  hosts: ["+hosts+"]\n  gateways: ["+gateways+"]\n  http:\n  - route: [{destination: {host: reviews}}]\n")
	}
	gw := func(name, ns, hosts string) string {
		return fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: %s, namespace: %s}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [%s]\n", name, ns, hosts)
	}
	ingress := gw("ingress", "gw", `"*"`)
	const text = "SLU0002 VirtualService default/%s: The VirtualServices default/a,default/b define the same host %s on gateway %s: their routes are merged in an undefined order. Merge them into one VirtualService, or give each its own host."
	runAnalyzerTable(t, "sluice.DuplicateGatewayHostAnalyzer", []analyzerCase{
		{"same host, same gateway", ingress + gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "shop.example.com"), []string{
			fmt.Sprintf(text, "a", "shop.example.com", "gw/ingress"), fmt.Sprintf(text, "b", "shop.example.com", "gw/ingress"),
		}},
		{"short gateway name and namespaced one agree", gw("ingress", "default", `"default/*.example.com"`) +
			gwVS("a", "ingress", "shop.example.com") + gwVS("b", "default/ingress", "shop.example.com"), []string{
			fmt.Sprintf(text, "a", "shop.example.com", "default/ingress"), fmt.Sprintf(text, "b", "shop.example.com", "default/ingress"),
		}},
		{"same host, other gateways", ingress + gw("two", "gw", `"*"`) + gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/two", "shop.example.com"), nil},
		{"other hosts, same gateway", ingress + gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "api.example.com"), nil},
		{"mesh gateway is IST0109's", gwVS("a", "mesh", "shop.example.com") + gwVS("b", "mesh", "shop.example.com"), nil},
		{"one VirtualService", ingress + gwVS("a", "gw/ingress", "shop.example.com"), nil},
		{"one not exported to the gateway's namespace", ingress + gwVS("a", "gw/ingress", "shop.example.com") +
			strings.Replace(gwVS("b", "gw/ingress", "shop.example.com"), "spec:\n", "spec:\n  exportTo: [.]\n", 1), nil},
		{"gateway admits only its own namespace", gw("ingress", "gw", `"./*"`) + gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "shop.example.com"), nil},
		{"gateway missing is IST0101's", gwVS("a", "gw/ingress", "shop.example.com") + gwVS("b", "gw/ingress", "shop.example.com"), nil},
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

func workloadEntry(name, labels string) string {
	return fmt.Sprintf("\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s, namespace: default}\nspec:\n  address: 10.0.0.%d\n  labels: {%s}\n", name, len(name), labels)
}

func TestSubsetEndpointsAnalyzer(t *testing.T) {
	svc := service("reviews", "default", "{name: http, port: 80}")
	dr := destinationRule("reviews", "  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n")
	v2Missing := func(n int) []string {
		return []string{fmt.Sprintf("SLU0004 DestinationRule default/reviews: Subset v2 (labels version=v2) selects none of the %d endpoint(s) of reviews.default.svc.cluster.local: requests routed to it fail with 503 (no healthy upstream). Label a workload version=v2, or fix the subset's labels.", n)}
	}
	runAnalyzerTable(t, "sluice.SubsetEndpointsAnalyzer", []analyzerCase{
		{"WorkloadEntries for both subsets", svc + dr + workloadEntry("r1", "app: reviews, version: v1") + workloadEntry("r2", "app: reviews, version: v2"), nil},
		{"no WorkloadEntry for v2", svc + dr + workloadEntry("r1", "app: reviews, version: v1"), v2Missing(1)},
		{"a pod for v2", svc + dr + workloadEntry("r1", "app: reviews, version: v1") + pod("p2", "app: reviews, version: v2"), nil},
		{"WorkloadEntry of another service does not count", svc + dr + workloadEntry("r1", "app: reviews, version: v1") + workloadEntry("o2", "app: other, version: v2"), v2Missing(1)},
		{"ServiceEntry endpoints", serviceEntry("ext", "  hosts: [api.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 10.1.1.1, labels: {version: v1}}]\n") +
			destinationRule("api", "  host: api.example.com\n  subsets: [{name: v2, labels: {version: v2}}]\n"), []string{
			"SLU0004 DestinationRule default/api: Subset v2 (labels version=v2) selects none of the 1 endpoint(s) of api.example.com: requests routed to it fail with 503 (no healthy upstream). Label a workload version=v2, or fix the subset's labels.",
		}},
		{"DNS ServiceEntry without endpoints is skipped", serviceEntry("ext", "  hosts: [api.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n") +
			destinationRule("api", "  host: api.example.com\n  subsets: [{name: v2, labels: {version: v2}}]\n"), nil},
		{"unknown host is IST0174's", dr, nil},
		{"no endpoint at all", svc + dr, nil},
	})
}

func TestPolicyProtocolAnalyzer(t *testing.T) {
	db := service("db", "default", "{name: tcp-pg, port: 5432}")
	web := service("db", "default", "{name: http-web, port: 80}")
	mixed := service("db", "default", "{name: tcp-pg, port: 5432}, {name: http-web, port: 80}")
	text := func(field, ports, proto string) string {
		return fmt.Sprintf("SLU0005 DestinationRule default/db: %s applies to HTTP only, but %s of db.default.svc.cluster.local is %s: it has no effect there. Remove it, or declare the port's protocol HTTP (port name http-*, appProtocol http).", field, ports, proto)
	}
	hashOnHeader := destinationRule("db", "  host: db\n  trafficPolicy:\n    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n")
	runAnalyzerTable(t, "sluice.PolicyProtocolAnalyzer", []analyzerCase{
		{"header hash on TCP", db + hashOnHeader, []string{text("trafficPolicy.loadBalancer.consistentHash.httpHeaderName", "port 5432", "TCP")}},
		{"header hash on HTTP", web + hashOnHeader, nil},
		{"header hash with one HTTP port", mixed + hashOnHeader, nil},
		{"source IP hash on TCP", db + destinationRule("db", "  host: db\n  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: true}}\n"), nil},
		{"http pool settings on TCP port level", mixed + destinationRule("db", "  host: db\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 5432}\n      connectionPool: {http: {idleTimeout: 30s, http1MaxPendingRequests: 10}}\n    - port: {number: 80}\n      connectionPool: {http: {idleTimeout: 30s}}\n"),
			[]string{text("trafficPolicy.portLevelSettings[0].connectionPool.http.idleTimeout", "port 5432", "TCP")}},
		{"subset policy on TCP", db + destinationRule("db", "  host: db\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n"),
			[]string{text("subsets[0].trafficPolicy.connectionPool.http.maxRequestsPerConnection", "port 5432", "TCP")}},
		{"outlier detection on TCP applies", db + destinationRule("db", "  host: db\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 3}\n"), nil},
		{"unknown protocol may be HTTP", service("db", "default", "{name: pg, port: 5432}") + hashOnHeader, nil},
	})
}

func egressSidecar(hosts string) string {
	return "\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\nspec:\n  egress:\n  - hosts: [" + hosts + "]\n"
}

func TestSidecarEgressHostAnalyzer(t *testing.T) {
	backend := service("backend", "default", "{name: http, port: 80}")
	runAnalyzerTable(t, "sluice.SidecarEgressHostAnalyzer", []analyzerCase{
		{"short name", backend + egressSidecar(`"default/backend"`), []string{
			`SLU0007 Sidecar default/default: Egress host "default/backend" matches no service visible to namespace default, so the workloads lose access to it. Did you mean "default/backend.default.svc.cluster.local"? Egress hosts take the namespace that declares the service and its fully qualified name.`,
		}},
		{"fully qualified", backend + egressSidecar(`"default/backend.default.svc.cluster.local"`), nil},
		{"dot namespace", backend + egressSidecar(`"./backend.default.svc.cluster.local"`), nil},
		{"wrong namespace", backend + egressSidecar(`"prod/backend.default.svc.cluster.local"`), []string{
			`SLU0007 Sidecar default/default: Egress host "prod/backend.default.svc.cluster.local" matches no service visible to namespace default, so the workloads lose access to it. Did you mean "default/backend.default.svc.cluster.local"? Egress hosts take the namespace that declares the service and its fully qualified name.`,
		}},
		{"wildcards", backend + egressSidecar(`"./*", "istio-system/*", "*/*.default.svc.cluster.local"`), nil},
		{"nothing like it", egressSidecar(`"default/nothing.example.com"`), []string{
			`SLU0007 Sidecar default/default: Egress host "default/nothing.example.com" matches no service visible to namespace default, so the workloads lose access to it. Egress hosts take the namespace that declares the service and its fully qualified name (e.g. "default/backend.default.svc.cluster.local"); declare an external host with a ServiceEntry.`,
		}},
		{"a ServiceEntry host", serviceEntry("ext", "  hosts: [api.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  resolution: DNS\n") + egressSidecar(`"default/api.example.com"`), nil},
	})
}

func TestStrictMTLSCallerAnalyzer(t *testing.T) {
	backend := service("backend", "default", "{name: http, port: 80}") + workloadEntry("backend-1", "app: backend")
	legacyWE := "\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: legacy, namespace: default, labels: {sidecar.istio.io/inject: \"false\"}}\nspec:\n  address: 10.9.9.9\n  labels: {app: legacy}\n"
	legacyPod := "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: legacy, namespace: default, labels: {app: legacy}, annotations: {sidecar.istio.io/inject: \"false\"}}\nspec:\n  containers: [{name: app, image: app}]\n"
	route := vs("to-backend", "  hosts: [backend]\n  http:\n  - match: [{sourceLabels: {app: legacy}}]\n    route: [{destination: {host: backend}}]\n")
	pa := func(name, ns, spec string) string {
		return fmt.Sprintf("\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, ns, spec)
	}
	strict := pa("strict", "default", "  mtls: {mode: STRICT}\n")
	want := func(paName, caller string) []string {
		return []string{fmt.Sprintf(`SLU0008 PeerAuthentication %s: STRICT mTLS is required on the workload app=backend of backend.default.svc.cluster.local, but %s routes to it (VirtualService default/to-backend) and has no sidecar (sidecar.istio.io/inject: "false"): its plaintext requests are refused. Give the caller a sidecar, or set mode PERMISSIVE for that workload or port.`, paName, caller)}
	}
	runAnalyzerTable(t, "sluice.StrictMTLSCallerAnalyzer", []analyzerCase{
		{"sidecarless WorkloadEntry", backend + legacyWE + route + strict, want("default/strict", "WorkloadEntry default/legacy")},
		{"sidecarless pod, mesh-wide STRICT", backend + legacyPod + route + pa("mesh", "istio-system", "  mtls: {mode: STRICT}\n"), want("istio-system/mesh", "Pod default/legacy")},
		{"PERMISSIVE", backend + legacyWE + route + pa("p", "default", "  mtls: {mode: PERMISSIVE}\n"), nil},
		{"workload PERMISSIVE overrides namespace STRICT", backend + legacyWE + route + strict +
			pa("backend", "default", "  selector: {matchLabels: {app: backend}}\n  mtls: {mode: PERMISSIVE}\n"), nil},
		{"port-level exception", backend + legacyWE + route +
			pa("backend", "default", "  selector: {matchLabels: {app: backend}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {\"80\": {mode: PERMISSIVE}}\n"), nil},
		{"caller has a sidecar", backend + workloadEntry("legacy", "app: legacy") + route + strict, nil},
		{"no route from the caller", backend + legacyWE + strict, nil},
	})
}
