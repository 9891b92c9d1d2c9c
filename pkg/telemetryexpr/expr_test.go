package telemetryexpr

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func testAttrs() *Attrs {
	r := httptest.NewRequest("GET", "http://web.default:8080/api/v1?x=1", nil)
	r.Header.Set("X-User", "alice")
	r.Header.Set("User-Agent", "curl/8")
	return &Attrs{Request: r, ResponseCode: 503, ResponseHeader: http.Header{"Grpc-Status": {"14"}},
		Source: netip.MustParseAddrPort("10.0.0.1:5555"), Destination: netip.MustParseAddrPort("10.0.0.2:8080"),
		MTLS: true, Upstream: &Peer{App: "web", Workload: "web-v1", Namespace: "default", Labels: map[string]string{"app": "web-app"}}}
}

func TestEval(t *testing.T) {
	a := testAttrs()
	for expr, want := range map[string]string{
		"request.headers['x-user']":                         "alice",
		"request.headers['x-missing']":                      Unknown,
		"request.host":                                      "web.default:8080",
		"request.method":                                    "GET",
		"request.url_path":                                  "/api/v1",
		"request.path":                                      "/api/v1?x=1",
		"request.protocol":                                  "HTTP/1.1",
		"request.useragent":                                 "curl/8",
		"response.code":                                     "503",
		"response.headers['grpc-status']":                   "14",
		"upstream_peer.app":                                 "web",
		"filter_state.upstream_peer.workload":               "web-v1",
		"downstream_peer.app":                               Unknown,
		"source.address":                                    "10.0.0.1:5555",
		"destination.port":                                  "8080",
		"connection.mtls":                                   "true",
		"'literal'":                                         "literal",
		"'v-' + request.method":                             "v-GET",
		"'x-user' in request.headers ? 'yes' : 'no'":        "yes",
		"request.headers['x-none'] + 'z'":                   Unknown,
		"response.code >= 500 ? 'error' : 'ok'":             "error",
		"upstream_peer.namespace + '/' + upstream_peer.app": "default/web",
		"has(request.host) ? request.host : 'unknown-host'": "web.default:8080",
		"string(destination.port)":                          "8080",
		"request.headers['x-user'] == 'alice'":              "true",
		"filter_state.upstream_peer.app + ':' + 'suffix'":   "web:suffix",
		"request.headers['user-agent'].startsWith('curl')":  "true",
		"size(request.headers['x-user'])":                   "5",
		"source.port":                                       "5555",
		"connection.requested_server_name":                  Unknown,
		"request.scheme":                                    "http",
		"upstream_peer.cluster":                             Unknown,
		"1":                                                 "1",
		"request.query":                                     "x=1",
		"request.id":                                        Unknown,
		"response.grpc_status":                              Unknown,
		"response.code_details":                             Unknown,
		"downstream_peer.workload":                          Unknown,
		"destination.address":                               "10.0.0.2:8080",
		"request.referer":                                   Unknown,
		"upstream_peer.version":                             Unknown,
		"upstream_peer.service":                             Unknown,
	} {
		x, err := Compile(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got := x.Eval(a); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
}

// TestTCPAttrs: on a TCP connection the request attributes are absent.
func TestTCPAttrs(t *testing.T) {
	a := &Attrs{Source: netip.MustParseAddrPort("10.0.0.1:1")}
	for _, expr := range []string{"request.host", "request.headers['x']", "response.code", "'a' + request.method"} {
		x, err := Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Eval(a); got != Unknown {
			t.Errorf("%s on TCP = %q", expr, got)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	for expr, want := range map[string]string{
		"request.size":               "attribute request.size is not supported",
		"upstream_peer.pod":          "attribute upstream_peer.pod is not supported",
		"filter_state.wasm":          "filter_state.wasm is not supported",
		"node.metadata['NAMESPACE']": "undeclared reference to 'node'",
		"request.host +":             "Syntax error",
		"xds.node.id":                "undeclared reference",
	} {
		err := Check(expr)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), expr) {
			t.Errorf("Check(%q) = %v, want an error naming it with %q", expr, err, want)
		}
	}
}

func TestConstantAndDirect(t *testing.T) {
	x, _ := Compile("'gateway'")
	if v, ok := x.Constant(); !ok || v != "gateway" {
		t.Errorf("literal: %q %v", v, ok)
	}
	for _, expr := range []string{"request.headers['x-user']", "request.host", "upstream_peer.app", "response.code",
		"upstream_peer.labels['app'].value",
		"'v-' + request.method", "request.method + ':' + request.headers['x-user']"} {
		x, _ := Compile(expr)
		if x.get == nil {
			t.Errorf("%s is not a direct accessor", expr)
			continue
		}
		if strings.Contains(expr, "+") {
			continue // builds one string per request
		}
		a := testAttrs()
		if n := testing.AllocsPerRun(100, func() { x.Eval(a) }); n != 0 {
			t.Errorf("%s allocates %v", expr, n)
		}
	}
}

func TestCheckTag(t *testing.T) {
	if err := CheckTag("request_host", "request.host"); err != nil {
		t.Error(err)
	}
	for name, expr := range map[string]string{"a-b": "'v'", "__x": "'v'", "1x": "'v'", "ok": "request.nope"} {
		if err := CheckTag(name, expr); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("CheckTag(%q, %q) = %v, want an error naming the tag", name, expr, err)
		}
	}
}
