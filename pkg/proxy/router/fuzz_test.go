package router

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fuzzTable has one route per kind of matcher; fuzzReference says, in
// plain Go, which route Envoy's first-match rules pick.
func fuzzTable(t testing.TB) *Table {
	re := func(s string) *matcher.RegexMatcher { return &matcher.RegexMatcher{Regex: s} }
	hdr := func(name string, m *route.HeaderMatcher) *route.HeaderMatcher { m.Name = name; return m }
	routes := []*route.Route{
		fwd("exact", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/exact"},
			Headers: []*route.HeaderMatcher{hdr("x-a", &route.HeaderMatcher{HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: exact("1")}})}}),
		fwd("ci", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/CI/"}, CaseSensitive: wrapperspb.Bool(false)}),
		fwd("regex", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: re("/r/[0-9]+")}}),
		fwd("sep", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/sep"}}),
		fwd("suffix", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/h"},
			Headers: []*route.HeaderMatcher{hdr("x-b", &route.HeaderMatcher{HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{
				StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: ".COM"}, IgnoreCase: true}}})}}),
		fwd("absent", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/i"},
			Headers: []*route.HeaderMatcher{hdr("x-c", &route.HeaderMatcher{HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true})}}),
		fwd("query", "c", &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"},
			QueryParameters: []*route.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &route.QueryParameterMatcher_StringMatch{StringMatch: exact("v")}}}}),
		fwd("all", "c", prefix("/")),
	}
	tbl, err := Compile(&route.RouteConfiguration{Name: "fuzz", VirtualHosts: []*route.VirtualHost{
		{Name: "main", Domains: []string{"fuzz"}, Routes: routes},
		{Name: "other", Domains: []string{"*"}, Routes: []*route.Route{fwd("other", "c", prefix("/"))}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func fuzzReference(host, path, xa, xb, xc, rawQuery string) string {
	if strings.ToLower(host) != "fuzz" {
		if strings.HasPrefix(path, "/") {
			return "other"
		}
		return ""
	}
	digits := func(s string) bool {
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return s != ""
	}
	q, _ := url.ParseQuery(rawQuery)
	switch {
	case path == "/exact" && xa == "1":
		return "exact"
	case strings.HasPrefix(strings.ToLower(path), "/ci/"):
		return "ci"
	case strings.HasPrefix(path, "/r/") && digits(path[3:]):
		return "regex"
	case path == "/sep" || strings.HasPrefix(path, "/sep/"):
		return "sep"
	case strings.HasPrefix(path, "/h") && xb != "" && strings.HasSuffix(strings.ToLower(xb), ".com"):
		return "suffix"
	case strings.HasPrefix(path, "/i") && xc == "":
		return "absent"
	case strings.HasPrefix(path, "/") && len(q["q"]) > 0 && q["q"][0] == "v":
		return "query"
	case strings.HasPrefix(path, "/"):
		return "all"
	}
	return ""
}

// FuzzMatch: the compiled table picks the route the plain-Go reference
// picks, for any authority, path, header values and query.
func FuzzMatch(f *testing.F) {
	f.Add("fuzz", "/exact", "1", "", "", "")
	f.Add("FUZZ", "/ci/x", "", "", "", "")
	f.Add("fuzz", "/r/123", "", "", "", "")
	f.Add("fuzz", "/sepx", "", "", "", "")
	f.Add("fuzz", "/home", "", "a.example.com", "", "")
	f.Add("fuzz", "/in", "", "", "", "q=v&q=w")
	f.Add("elsewhere", "/", "", "", "", "")
	tbl := fuzzTable(f)
	f.Fuzz(func(t *testing.T, host, path, xa, xb, xc, rawQuery string) {
		r := &http.Request{Method: "GET", Host: host, Header: http.Header{}, URL: &url.URL{RawQuery: rawQuery}}
		for k, v := range map[string]string{"X-A": xa, "X-B": xb, "X-C": xc} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		want := fuzzReference(host, path, xa, xb, xc, rawQuery)
		got := ""
		if rt := tbl.MatchPath(r, host, path); rt != nil {
			got = rt.Name
		}
		if got != want {
			t.Fatalf("host %q path %q x-a %q x-b %q x-c %q query %q: matched %q, want %q", host, path, xa, xb, xc, rawQuery, got, want)
		}
	})
}
