package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

func headerPolicy(name string, terminal bool) *route.RouteAction_HashPolicy {
	return &route.RouteAction_HashPolicy{Terminal: terminal, PolicySpecifier: &route.RouteAction_HashPolicy_Header_{
		Header: &route.RouteAction_HashPolicy_Header{HeaderName: name}}}
}

func mustPolicy(t *testing.T, ps ...*route.RouteAction_HashPolicy) *HashPolicy {
	t.Helper()
	hp, err := CompileHashPolicy(ps)
	if err != nil {
		t.Fatal(err)
	}
	return hp
}

func TestHashHeader(t *testing.T) {
	hp := mustPolicy(t, headerPolicy("x-user", false))
	r := httptest.NewRequest("GET", "/", nil)
	if res := hp.Hash(r); res.OK {
		t.Fatal("no header: want no hash key (a random one is used)")
	}
	r.Header.Set("X-User", "alice")
	res := hp.Hash(r)
	if !res.OK || res.Key != XXHash64String("alice") {
		t.Fatalf("header hash = %#x ok=%v, want xxHash64(\"alice\")", res.Key, res.OK)
	}
	// Several values: sorted, so order does not matter.
	r1, r2 := httptest.NewRequest("GET", "/", nil), httptest.NewRequest("GET", "/", nil)
	r1.Header["X-User"] = []string{"a", "b"}
	r2.Header["X-User"] = []string{"b", "a"}
	if hp.Hash(r1).Key != hp.Hash(r2).Key {
		t.Error("multi-valued header hash depends on value order")
	}
	// Pseudo-header :authority is the Host.
	ha := mustPolicy(t, headerPolicy(":authority", false))
	r.Host = "reviews:9080"
	if ha.Hash(r).Key != XXHash64String("reviews:9080") {
		t.Error(":authority did not hash the Host")
	}
}

func TestHashCombineAndTerminal(t *testing.T) {
	r := httptest.NewRequest("GET", "/?user=bob", nil)
	r.Header.Set("X-A", "1")
	r.Header.Set("X-B", "2")
	both := mustPolicy(t, headerPolicy("x-a", false), headerPolicy("x-b", false))
	ha, hb := XXHash64String("1"), XXHash64String("2")
	want := (ha<<1 | ha>>63) ^ hb
	if got := both.Hash(r).Key; got != want {
		t.Errorf("two policies: %#x, want rotl(h1,1)^h2 = %#x", got, want)
	}
	term := mustPolicy(t, headerPolicy("x-a", true), headerPolicy("x-b", false))
	if got := term.Hash(r).Key; got != ha {
		t.Errorf("terminal first policy: %#x, want h1 only", got)
	}
	q := mustPolicy(t, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_QueryParameter_{
		QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: "user"}}})
	if got := q.Hash(r); !got.OK || got.Key != XXHash64String("bob") {
		t.Errorf("query hash %#x ok=%v, want xxHash64(\"bob\")", got.Key, got.OK)
	}
}

func TestHashSourceIP(t *testing.T) {
	hp := mustPolicy(t, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{
		ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:45678"
	if got := hp.Hash(r); !got.OK || got.Key != XXHash64String("10.1.2.3") {
		t.Errorf("source IP hash %#x ok=%v, want xxHash64(\"10.1.2.3\") (port left out)", got.Key, got.OK)
	}
}

func TestHashCookie(t *testing.T) {
	withTTL := mustPolicy(t, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
		Cookie: &route.RouteAction_HashPolicy_Cookie{Name: "session", Path: "/", Ttl: durationpb.New(time.Hour)}}})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15001}))
	res := withTTL.Hash(r)
	if !res.OK || res.SetCookie == "" {
		t.Fatalf("no cookie, ttl set: want a generated cookie, got %+v", res)
	}
	value := strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(res.SetCookie, ";", 2)[0], `session="`), `"`)
	if len(value) != 16 {
		t.Fatalf("generated cookie value %q: want 16 hex digits", value)
	}
	if want := `session="` + value + `"; Max-Age=3600; Path=/; HttpOnly`; res.SetCookie != want {
		t.Errorf("Set-Cookie %q, want %q", res.SetCookie, want)
	}
	if res.Key != XXHash64String(value) {
		t.Error("the request is not hashed on the cookie it is given")
	}
	// The client sends it back (Go's cookie jar drops the quotes): same key.
	r2 := httptest.NewRequest("GET", "/", nil)
	r2.Header.Set("Cookie", "other=1; session="+value)
	res2 := withTTL.Hash(r2)
	if res2.SetCookie != "" || res2.Key != res.Key {
		t.Errorf("with the cookie: key %#x set %q, want key %#x and no Set-Cookie", res2.Key, res2.SetCookie, res.Key)
	}
	r2.Header.Set("Cookie", `session="`+value+`"`)
	if withTTL.Hash(r2).Key != res.Key {
		t.Error("quoted cookie value hashed differently")
	}
	// Without a TTL Envoy generates nothing.
	noTTL := mustPolicy(t, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
		Cookie: &route.RouteAction_HashPolicy_Cookie{Name: "session"}}})
	if got := noTTL.Hash(httptest.NewRequest("GET", "/", nil)); got.OK || got.SetCookie != "" {
		t.Errorf("no TTL, no cookie: %+v, want nothing", got)
	}
	// TTL 0 is a session cookie: no Max-Age.
	session := mustPolicy(t, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
		Cookie: &route.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(0)}}})
	if got := session.Hash(r).SetCookie; strings.Contains(got, "Max-Age") {
		t.Errorf("zero TTL: %q has a Max-Age", got)
	}
}

func TestHashPolicyRejects(t *testing.T) {
	_, err := CompileHashPolicy([]*route.RouteAction_HashPolicy{{PolicySpecifier: &route.RouteAction_HashPolicy_FilterState_{
		FilterState: &route.RouteAction_HashPolicy_FilterState{Key: "x"}}}})
	if err == nil {
		t.Error("filter_state hash policy accepted")
	}
}
