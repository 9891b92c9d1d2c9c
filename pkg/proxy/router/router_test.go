package router

import (
	"net/http/httptest"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func prefix(p string) *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: p}}
}

func fwd(name, cluster string, m *route.RouteMatch) *route.Route {
	return &route.Route{Name: name, Match: m, Action: &route.Route_Route{Route: &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster}}}}
}

func exact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}

func TestVirtualHostSelection(t *testing.T) {
	rc := &route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{
		{Name: "exact", Domains: []string{"reviews:9080", "reviews"}, Routes: []*route.Route{fwd("r", "c1", prefix("/"))}},
		{Name: "short-wild", Domains: []string{"*.example.com"}, Routes: []*route.Route{fwd("r", "c2", prefix("/"))}},
		{Name: "long-wild", Domains: []string{"*.api.example.com"}, Routes: []*route.Route{fwd("r", "c3", prefix("/"))}},
		{Name: "prefix-wild", Domains: []string{"foo.*"}, Routes: []*route.Route{fwd("r", "c4", prefix("/"))}},
		{Name: "any", Domains: []string{"*"}, Routes: []*route.Route{fwd("r", "c5", prefix("/"))}},
	}}
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"reviews:9080":      "exact",
		"REVIEWS":           "exact",
		"a.example.com":     "short-wild",
		"x.api.example.com": "long-wild", // the longest suffix wins
		"foo.bar":           "prefix-wild",
		"example.com":       "any", // "*.example.com" needs at least one more label
		"other":             "any",
	} {
		if got := tbl.VirtualHost(host); got == nil || got.Name != want {
			t.Errorf("host %q: got %v, want %s", host, got, want)
		}
	}
}

func TestDuplicateDomainRejected(t *testing.T) {
	rc := &route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{
		{Name: "a", Domains: []string{"x"}}, {Name: "b", Domains: []string{"x"}},
	}}
	if _, err := Compile(rc); err == nil {
		t.Fatal("Envoy rejects one domain in two virtual hosts; so must we")
	}
}

func TestRouteMatching(t *testing.T) {
	headers := func(hs ...*route.HeaderMatcher) *route.RouteMatch {
		m := prefix("/")
		m.Headers = hs
		return m
	}
	hm := func(name string, sm *matcher.StringMatcher, invert bool) *route.HeaderMatcher {
		return &route.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: sm}}
	}
	present := func(name string, invert bool) *route.HeaderMatcher {
		return &route.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	regex := func(re string) *matcher.StringMatcher {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re}}}
	}
	caseless := prefix("/CaSe")
	caseless.CaseSensitive = wrapperspb.Bool(false)
	query := prefix("/q")
	query.QueryParameters = []*route.QueryParameterMatcher{
		{Name: "v", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: exact("1")}},
		{Name: "p", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
	}
	queryAbsent := prefix("/qa")
	queryAbsent.QueryParameters = []*route.QueryParameterMatcher{
		{Name: "debug", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_PresentMatch{PresentMatch: false}},
	}
	routes := []*route.Route{
		fwd("exact-path", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/exact"}}),
		fwd("regex-path", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/api/v[0-9]+"}}}),
		fwd("caseless", "c", caseless),
		fwd("query", "c", query),
		fwd("query-absent", "c", queryAbsent),
		fwd("method-and-header", "c", headers(hm(":method", exact("POST"), false), hm("x-team", regex("blue|green"), false))),
		fwd("absent-debug", "c", headers(present("x-debug", true), hm("x-mode", exact("strict"), false))),
		fwd("authority", "c", headers(hm(":authority", &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "alt"}}, false))),
		fwd("scheme", "c", headers(hm(":scheme", exact("https"), false))),
		fwd("catch-all", "c", prefix("/")),
	}
	tbl, err := Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: routes}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, target, host string
		hdr                  map[string]string
		want                 string
	}{
		{"GET", "/exact", "h", nil, "exact-path"},
		{"GET", "/exact/more", "h", nil, "catch-all"},
		{"GET", "/exact?x=1", "h", nil, "exact-path"}, // the query is not part of the path
		{"GET", "/api/v2", "h", nil, "regex-path"},
		{"GET", "/api/v2/x", "h", nil, "catch-all"}, // safe_regex matches the whole path
		{"GET", "/case/x", "h", nil, "caseless"},
		{"GET", "/q?v=1&p", "h", nil, "query"},
		{"GET", "/q?v=1", "h", nil, "catch-all"}, // all query conditions must hold
		{"GET", "/q?v=2&p=x", "h", nil, "catch-all"},
		{"GET", "/qa?x=1", "h", nil, "query-absent"}, // present_match false: the parameter must be absent
		{"GET", "/qa?debug", "h", nil, "catch-all"},
		{"GET", "/qa?debug=1", "h", nil, "catch-all"},
		{"POST", "/x", "h", map[string]string{"X-Team": "green"}, "method-and-header"},
		{"POST", "/x", "h", map[string]string{"X-Team": "red"}, "catch-all"},
		{"GET", "/x", "h", map[string]string{"X-Team": "green"}, "catch-all"},
		{"GET", "/x", "h", map[string]string{"X-Mode": "strict"}, "absent-debug"},
		{"GET", "/x", "h", map[string]string{"X-Mode": "strict", "X-Debug": "1"}, "catch-all"},
		{"GET", "/x", "alt.example", nil, "authority"},
		{"GET", "/x", "h", nil, "catch-all"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		r.Host = c.host
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		got := tbl.Match(r)
		if got == nil || got.Name != c.want {
			name := "<nil>"
			if got != nil {
				name = got.Name
			}
			t.Errorf("%s %s host %s %v: matched %s, want %s", c.method, c.target, c.host, c.hdr, name, c.want)
		}
	}
}

func TestMultipleHeaderValuesJoined(t *testing.T) {
	m := prefix("/")
	m.Headers = []*route.HeaderMatcher{{Name: "x-v", HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("a,b")}}}
	tbl, err := Compile(&route.RouteConfiguration{VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*route.Route{fwd("r", "c", m)}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("X-V", "a")
	r.Header.Add("X-V", "b")
	if tbl.Match(r) == nil {
		t.Error("Envoy matches several values of one header joined by ','")
	}
}

func TestRewriteAndRedirect(t *testing.T) {
	tests := []struct {
		match   *route.RouteMatch
		rewrite string
		path    string
		want    string
	}{
		{prefix("/v1/"), "/v2/", "/v1/items", "/v2/items"},
		{prefix("/v1"), "/", "/v1", "/"},
		{prefix("/"), "/bar", "/foo", "/barfoo"}, // Envoy's prefix_rewrite with prefix "/"
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/old"}}, "/new", "/old", "/new"},
	}
	for _, tc := range tests {
		ra := &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: tc.rewrite}
		tbl, err := Compile(&route.RouteConfiguration{VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"},
			Routes: []*route.Route{{Name: "r", Match: tc.match, Action: &route.Route_Route{Route: ra}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", tc.path, nil)
		rt := tbl.Match(r)
		if rt == nil {
			t.Fatalf("%s: no match", tc.path)
		}
		if got := rt.RewritePath(tc.path); got != tc.want {
			t.Errorf("rewrite %q on %q: got %q, want %q", tc.rewrite, tc.path, got, tc.want)
		}
	}

	redirects := []struct {
		rd   *route.RedirectAction
		in   string
		host string
		want string
		code int
	}{
		{&route.RedirectAction{PathRewriteSpecifier: &route.RedirectAction_PathRedirect{PathRedirect: "/new"}}, "/old?a=1", "web:8080", "http://web:8080/new?a=1", 301},
		{&route.RedirectAction{HostRedirect: "other.example", ResponseCode: route.RedirectAction_FOUND}, "/p", "web:8080", "http://other.example:8080/p", 302},
		{&route.RedirectAction{SchemeRewriteSpecifier: &route.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}, "/p", "web", "https://web/p", 301},
		{&route.RedirectAction{SchemeRewriteSpecifier: &route.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}, "/p", "web:80", "https://web/p", 301},
		{&route.RedirectAction{PortRedirect: 8443, ResponseCode: route.RedirectAction_PERMANENT_REDIRECT}, "/p", "web", "http://web:8443/p", 308},
		{&route.RedirectAction{PortRedirect: 443, SchemeRewriteSpecifier: &route.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}, "/p", "web:8080", "https://web/p", 301},
		{&route.RedirectAction{StripQuery: true, ResponseCode: route.RedirectAction_TEMPORARY_REDIRECT}, "/p?x=1", "web", "http://web/p", 307},
	}
	for i, tc := range redirects {
		tbl, err := Compile(&route.RouteConfiguration{VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"},
			Routes: []*route.Route{{Name: "r", Match: prefix("/"), Action: &route.Route_Redirect{Redirect: tc.rd}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", tc.in, nil)
		r.Host = tc.host
		rt := tbl.Match(r)
		if got := rt.Location(r); got != tc.want {
			t.Errorf("redirect %d: Location %q, want %q", i, got, tc.want)
		}
		if got := rt.RedirectCode(); got != tc.code {
			t.Errorf("redirect %d: code %d, want %d", i, got, tc.code)
		}
	}
}

func TestWeightedPickProportions(t *testing.T) {
	a := Action{Weighted: []WeightedCluster{{Name: "v1", Weight: 90}, {Name: "v2", Weight: 10}}, total: 100}
	counts := map[string]int{}
	const n = 100000
	for i := 0; i < n; i++ {
		name, _ := a.PickCluster()
		counts[name]++
	}
	// binomial sd at n=1e5, p=0.1 is ~0.00095; allow 5 sd.
	if f := float64(counts["v2"]) / n; f < 0.0953 || f > 0.1047 {
		t.Errorf("v2 share %.4f, want 0.10±0.0047", f)
	}
}
