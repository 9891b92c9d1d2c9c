package rbac_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// Tests through the real connection manager: xDS as Istio's inbound
// listener has it (normalize_path, merge_slashes, escaped slashes kept,
// RBAC filters before the router), compiled by dataplane, served by
// httpproxy on loopback in front of a real backend.

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func toApp(name, prefix string) *route.Route {
	return &route.Route{Name: name, Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: prefix}},
		Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "app"}}}}
}

func socket(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
}

// inbound is a runtime with one HTTP listener "inbound" whose connection
// manager runs filters then the router to the backend at addr.
func inbound(t testing.TB, addr string, filters ...*rbachttp.RBAC) *dataplane.Runtime {
	t.Helper()
	return inboundRoutes(t, addr, nil, filters...)
}

// inboundRoutes is inbound with routes before the catch-all.
func inboundRoutes(t testing.TB, addr string, routes []*route.Route, filters ...*rbachttp.RBAC) *dataplane.Runtime {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(addr)
	var port uint32
	fmt.Sscan(portStr, &port)
	var hfs []*hcm.HttpFilter
	for _, f := range filters {
		hfs = append(hfs, &hcm.HttpFilter{Name: rbac.Name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, f)}})
	}
	hfs = append(hfs, &hcm.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	m := &hcm.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_8080",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "inbound",
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}},
		HttpFilters: hfs, StreamIdleTimeout: durationpb.New(0), UseRemoteAddress: wrapperspb.Bool(false),
		// Istio's inbound defaults (meshConfig.pathNormalization DEFAULT:
		// BASE; merge_slashes with MERGE_SLASHES and up).
		NormalizePath: wrapperspb.Bool(true), MergeSlashes: true, PathWithEscapedSlashesAction: hcm.HttpConnectionManager_KEEP_UNCHANGED,
	}
	l := &listener.Listener{Name: "inbound", Address: socket("127.0.0.1", 1), TrafficDirection: core.TrafficDirection_INBOUND,
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, m)}}}}}}
	rc := &route.RouteConfiguration{Name: "inbound", VirtualHosts: []*route.VirtualHost{{Name: "app", Domains: []string{"*"},
		Routes: append(routes, toApp("default", "/"))}}}
	c := &cluster.Cluster{Name: "app", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}, ConnectTimeout: durationpb.New(1e9),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "app", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: socket(host, port)}}}}}}}}
	items := map[string]map[string]proto.Message{
		xdsclient.ListenerType: {"inbound": l}, xdsclient.RouteType: {"inbound": rc}, xdsclient.ClusterType: {"app": c}, xdsclient.EndpointType: {},
	}
	rt, _, err := dataplane.Compile(dataplane.CompileOptions{Resources: xdsclient.Resources{Items: items}, Stats: dataplane.NewStatsStore()})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// server serves rt's "inbound" listener; it returns its address and the
// shared counters.
func server(t testing.TB, rt *dataplane.Runtime, opts rbac.Options) (string, *httpproxy.Shared) {
	var ptr atomic.Pointer[dataplane.Runtime]
	ptr.Store(rt)
	sh := httpproxy.NewShared()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rbac.Configure(sh.Stats, opts)
	srv := httptest.NewServer(httpproxy.New(httpproxy.Options{Listener: "inbound", Runtime: &ptr, Shared: sh}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), sh
}

// backend answers 200 with the path it got.
func backend(t testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app saw "+r.URL.EscapedPath())
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// raw sends a request line as written (no client-side cleaning) and
// returns the answer.
func raw(t testing.TB, addr, method, target string, hdrs ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := method + " " + target + " HTTP/1.1\r\nHost: app.default.svc.cluster.local\r\nConnection: close\r\n"
	for _, h := range hdrs {
		req += h + "\r\n"
	}
	io.WriteString(c, req+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func prefixPath(p string) *rbacpb.Permission {
	return &rbacpb.Permission{Rule: &rbacpb.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{
		Path: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: p}}}}}}
}

var anyone = []*rbacpb.Principal{{Identifier: &rbacpb.Principal_Any{Any: true}}}

// denyAdmin is Istio's DENY policy for paths ["/admin*"].
func denyAdmin() *rbachttp.RBAC {
	return &rbachttp.RBAC{Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_DENY, Policies: map[string]*rbacpb.Policy{
		"ns[default]-policy[deny-admin]-rule[0]": {Permissions: []*rbacpb.Permission{prefixPath("/admin")}, Principals: anyone}}}}
}

// TestPathNormalizationAttacks: a DENY of /admin* holds against
// /public/../admin, /public/%2e%2e/admin and //admin, because the
// connection manager normalizes the path before RBAC reads it (and the
// app gets the normalized path).
func TestPathNormalizationAttacks(t *testing.T) {
	var logs syncBuffer
	addr, sh := server(t, inbound(t, backend(t), denyAdmin()), rbac.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, p := range []string{"/admin", "/admin/users", "/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin/x", "//admin", "/./admin", "/public/./../../admin?x=1"} {
		resp, body := raw(t, addr, "GET", p)
		if resp.StatusCode != 403 || strings.TrimSpace(body) != rbac.DeniedBody {
			t.Errorf("GET %s: %d %q, want 403 %q", p, resp.StatusCode, body, rbac.DeniedBody)
		}
		if resp.Header.Get(rbac.ExplainHeader) != "" {
			t.Errorf("GET %s: %s sent without --authz-explain-header", p, rbac.ExplainHeader)
		}
	}
	for p, want := range map[string]string{"/public": "/public", "/public/../ok": "/ok", "/administrator/../public": "/public"} {
		resp, body := raw(t, addr, "GET", p)
		if resp.StatusCode != 200 || body != "app saw "+want {
			t.Errorf("GET %s: %d %q, want 200 from the app with %s", p, resp.StatusCode, body, want)
		}
	}
	var b strings.Builder
	sh.Stats.WriteText(&b)
	for _, want := range []string{
		"http.inbound_0.0.0.0_8080.rbac.denied: 8\n",
		"http.inbound_0.0.0.0_8080.rbac.allowed: 3\n",
		"http.inbound_0.0.0.0_8080.rbac.policy.ns[default]-policy[deny-admin]-rule[0].denied: 8\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, b.String())
		}
	}
	ds := rbac.Recent(sh.Stats)
	if first := ds[len(ds)-1]; len(ds) != 11 || first.Allowed || first.Path != "/admin" || first.Policy != "ns[default]-policy[deny-admin]-rule[0]" ||
		first.Reason != "denied by DENY policy ns[default]-policy[deny-admin]-rule[0]" || first.Method != "GET" || !first.Source.IsValid() {
		t.Errorf("recent decisions: %d, oldest %+v", len(ds), first)
	}
	// The denial's log line (INFO) names the policy, source and request.
	line := `level=INFO msg="rbac: denied" kind=http filter=inbound_0.0.0.0_8080 policy=ns[default]-policy[deny-admin]-rule[0] reason="denied by DENY policy ns[default]-policy[deny-admin]-rule[0]" principal="" source=127.0.0.1:`
	if got := logs.String(); strings.Count(got, line) != 8 || !strings.Contains(got, "method=GET authority=app.default.svc.cluster.local path=/admin/x") || strings.Contains(got, "path=/public") {
		t.Errorf("log:\n%s", got)
	}
}

// TestAllowPolicyAndExplainHeader: with ALLOW policies, a request none
// matches is denied with "no ALLOW policy matched"; with the explain
// header on, the answer says so (and names a deciding DENY policy).
func TestAllowPolicyAndExplainHeader(t *testing.T) {
	allowGet := &rbachttp.RBAC{Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{
		"ns[default]-policy[allow-api]-rule[0]": {Permissions: []*rbacpb.Permission{prefixPath("/api")}, Principals: anyone}}}}
	rt := inbound(t, backend(t), denyAdmin(), allowGet)
	addr, sh := server(t, rt, rbac.Options{ExplainHeader: true})
	resp, _ := raw(t, addr, "GET", "/api/x")
	if resp.StatusCode != 200 {
		t.Errorf("/api/x: %d", resp.StatusCode)
	}
	resp, body := raw(t, addr, "GET", "/other")
	if resp.StatusCode != 403 || resp.Header.Get(rbac.ExplainHeader) != "no ALLOW policy matched" || strings.TrimSpace(body) != rbac.DeniedBody {
		t.Errorf("/other: %d %q %q", resp.StatusCode, resp.Header.Get(rbac.ExplainHeader), body)
	}
	resp, _ = raw(t, addr, "GET", "/admin")
	if resp.StatusCode != 403 || resp.Header.Get(rbac.ExplainHeader) != "denied by DENY policy ns[default]-policy[deny-admin]-rule[0]" {
		t.Errorf("/admin: %d %q", resp.StatusCode, resp.Header.Get(rbac.ExplainHeader))
	}
	if got := resp.Header.Get(httpfilter.ResponseFlagsHeader); got != "" {
		t.Errorf("response flags %q: Envoy's RBAC denial sets none", got)
	}
	var b strings.Builder
	sh.Stats.WriteText(&b)
	// Two RBAC filters share the connection manager's counters by name.
	for _, want := range []string{"http.inbound_0.0.0.0_8080.rbac.denied: 2\n", "http.inbound_0.0.0.0_8080.rbac.allowed: 3\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, b.String())
		}
	}
}

// TestShadowRules: Istio's dry-run policies are shadow rules: evaluated,
// counted under Istio's shadow stat prefix and recorded, never enforced.
func TestShadowRules(t *testing.T) {
	dry := &rbachttp.RBAC{ShadowRulesStatPrefix: "istio_dry_run_deny_", ShadowRules: &rbacpb.RBAC{Action: rbacpb.RBAC_DENY,
		Policies: map[string]*rbacpb.Policy{"ns[default]-policy[dry]-rule[0]": {Permissions: []*rbacpb.Permission{prefixPath("/admin")}, Principals: anyone}}}}
	addr, sh := server(t, inbound(t, backend(t), dry), rbac.Options{})
	for _, p := range []string{"/admin", "/public"} {
		if resp, _ := raw(t, addr, "GET", p); resp.StatusCode != 200 {
			t.Errorf("%s: %d: a dry-run policy enforced", p, resp.StatusCode)
		}
	}
	var b strings.Builder
	sh.Stats.WriteText(&b)
	for _, want := range []string{"rbac.istio_dry_run_deny_shadow_denied: 1\n", "rbac.istio_dry_run_deny_shadow_allowed: 1\n",
		"rbac.policy.ns[default]-policy[dry]-rule[0].shadow_denied: 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, b.String())
		}
	}
	if ds := rbac.Recent(sh.Stats); len(ds) != 2 || !ds[1].Shadow || ds[1].Allowed || ds[1].Policy != "ns[default]-policy[dry]-rule[0]" {
		t.Errorf("decisions %+v", ds)
	}
}

// syncBuffer is a log sink the handlers' goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestPerRoute: RBACPerRoute without rbac disables the filters on its
// route; with rbac it replaces their config there (Envoy's most specific
// per-route config).
func TestPerRoute(t *testing.T) {
	open := toApp("open", "/admin/open")
	open.TypedPerFilterConfig = map[string]*anypb.Any{rbac.Name: mustAny(t, &rbachttp.RBACPerRoute{})}
	strict := toApp("strict", "/strict")
	strict.TypedPerFilterConfig = map[string]*anypb.Any{rbac.Name: mustAny(t, &rbachttp.RBACPerRoute{Rbac: &rbachttp.RBAC{
		Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW}}})}
	addr, _ := server(t, inboundRoutes(t, backend(t), []*route.Route{open, strict}, denyAdmin()), rbac.Options{})
	for p, want := range map[string]int{"/admin/open": 200, "/admin/x": 403, "/strict": 403, "/public": 200} {
		if resp, _ := raw(t, addr, "GET", p); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, resp.StatusCode, want)
		}
	}
}
