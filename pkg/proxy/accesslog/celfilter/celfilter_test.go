package celfilter

import (
	"net/http"
	"strings"
	"testing"
)

type src struct {
	vals map[Attr]Value
	req  http.Header
}

func (s src) Attr(a Attr) (Value, bool) { v, ok := s.vals[a]; return v, ok }
func (s src) Header(resp bool, name string) (string, bool) {
	if resp || s.req == nil {
		return "", false
	}
	v := s.req.Values(name)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func TestFilterMatch(t *testing.T) {
	get := src{vals: map[Attr]Value{ResponseCode: {Int: 418}, RequestMethod: {Str: "GET"},
		RequestURLPath: {Str: "/status/418"}, ConnectionMTLS: {Bool: true}, XDSClusterName: {Str: "outbound|8000||a"},
		ResponseFlags: {Int: 2}},
		req: http.Header{"X-Test": {"yes"}}}
	ok200 := src{vals: map[Attr]Value{ResponseCode: {Int: 200}, RequestMethod: {Str: "POST"},
		RequestUserAgent: {Str: "Amazon-Route53-Health-Check-Service x"}}}
	cases := []struct {
		expr      string
		get, ok2x bool
	}{
		{"response.code >= 400", true, false},
		{"request.method == 'GET'", true, false},
		{"request.headers['x-test'] == 'yes'", true, false},
		{"has(request.headers.x_other)", false, false},
		{"connection.mtls", true, false},
		{"response.flags != 0", true, false},
		{"response.code >= 400 || xds.cluster_name == 'BlackHoleCluster' ||  xds.cluster_name == 'PassthroughCluster' ", true, false},
		{`!has(request.useragent) || !(request.useragent.startsWith("Amazon-Route53-Health-Check-Service"))`, true, false},
		// an absent attribute is an evaluation error: not logged, as Envoy
		{"request.useragent == 'x'", false, false},
		{"request.url_path.startsWith('/status')", true, false},
	}
	for _, c := range cases {
		f, err := Compile(c.expr)
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := f.Match(get); got != c.get {
			t.Errorf("%s on the 418 GET: %v, want %v", c.expr, got, c.get)
		}
		if got := f.Match(ok200); got != c.ok2x {
			t.Errorf("%s on the 200 POST: %v, want %v", c.expr, got, c.ok2x)
		}
	}
}

func TestFilterRejects(t *testing.T) {
	for expr, want := range map[string]string{
		"response.code >":              "invalid CEL",
		"request.foo == 'x'":           "request.foo",
		"upstream_peer.app == 'x'":     "undeclared",
		"size(request) > 1":            "without naming",
		"request[request.method] == 1": "not a constant",
		"":                             "empty",
		"response.grpc_status == 2":    "response.grpc_status",
	} {
		_, err := Compile(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", expr, err, want)
		}
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	f, err := Compile("response.code >= 400")
	if err != nil {
		b.Fatal(err)
	}
	s := src{vals: map[Attr]Value{ResponseCode: {Int: 200}}}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(s)
	}
}
