package rbac_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/downstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// echoBackend is a TCP server echoing each line.
func echoBackend(t testing.TB) (host string, port uint32) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	a := lis.Addr().(*net.TCPAddr)
	return "127.0.0.1", uint32(a.Port)
}

// tcpRuntime is a TCP listener "tcp" whose chain is filters then
// tcp_proxy to the echo backend.
func tcpRuntime(t testing.TB, filters ...*rbactcp.RBAC) (*dataplane.Runtime, error) {
	host, port := echoBackend(t)
	var fs []*listener.Filter
	for _, f := range filters {
		fs = append(fs, &listener.Filter{Name: rbac.NetworkName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t, f)}})
	}
	fs = append(fs, &listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(t,
		&tcpproxyv3.TcpProxy{StatPrefix: "echo", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: "echo"}})}})
	l := &listener.Listener{Name: "tcp", Address: socket("127.0.0.1", 1), FilterChains: []*listener.FilterChain{{Filters: fs}}}
	c := &cluster.Cluster{Name: "echo", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}, ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "echo", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: socket(host, port)}}}}}}}}
	items := map[string]map[string]proto.Message{
		xdsclient.ListenerType: {"tcp": l}, xdsclient.RouteType: {}, xdsclient.ClusterType: {"echo": c}, xdsclient.EndpointType: {},
	}
	rt, _, err := dataplane.Compile(dataplane.CompileOptions{Resources: xdsclient.Resources{Items: items}, Stats: dataplane.NewStatsStore()})
	return rt, err
}

// serveTCP serves rt's "tcp" listener on lis.
func serveTCP(t testing.TB, rt *dataplane.Runtime, lis net.Listener) *httpfilter.Scope {
	var ptr atomic.Pointer[dataplane.Runtime]
	ptr.Store(rt)
	sc := httpfilter.NewScope()
	rbac.Configure(sc, rbac.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := downstream.New(downstream.Options{Listener: "tcp", Runtime: &ptr, Scope: sc})
	go srv.Serve(lis)
	t.Cleanup(srv.Close)
	return sc
}

// echoes reports whether a line sent through addr comes back.
func echoes(t testing.TB, addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "hello")
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "hello\n"
}

func directIP(cidr string, bits uint32) *rbacpb.Principal {
	return &rbacpb.Principal{Identifier: &rbacpb.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: cidr, PrefixLen: wrapperspb.UInt32(bits)}}}
}

// TestNetworkRBAC: over real sockets, a TCP chain [rbac, tcp_proxy]
// passes a connection its policies allow and closes one they deny,
// counting both under Istio's tcp. prefix and recording the decision.
func TestNetworkRBAC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(lis.Addr().(*net.TCPAddr).Port)
	allowLocal := &rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{
		"ns[default]-policy[local]-rule[0]": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: port}}},
			Principals: []*rbacpb.Principal{directIP("127.0.0.0", 8)}}}}}
	rt, err := tcpRuntime(t, allowLocal)
	if err != nil {
		t.Fatal(err)
	}
	sc := serveTCP(t, rt, lis)
	if !echoes(t, lis.Addr().String()) {
		t.Fatal("an allowed connection was not proxied")
	}

	// A second listener denies by port: the connection is closed before
	// anything reaches the backend.
	lis2, _ := net.Listen("tcp", "127.0.0.1:0")
	port2 := uint32(lis2.Addr().(*net.TCPAddr).Port)
	denyPort := &rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_DENY, Policies: map[string]*rbacpb.Policy{
		"ns[default]-policy[no-port]-rule[0]": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: port2}}},
			Principals: anyone}}}}
	rt2, err := tcpRuntime(t, denyPort)
	if err != nil {
		t.Fatal(err)
	}
	sc2 := serveTCP(t, rt2, lis2)
	if echoes(t, lis2.Addr().String()) {
		t.Fatal("a denied connection was proxied")
	}
	// An ALLOW policy for other sources only: no ALLOW policy matched.
	lis3, _ := net.Listen("tcp", "127.0.0.1:0")
	allowOther := &rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{
		"ns[default]-policy[other]-rule[0]": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_Any{Any: true}}},
			Principals: []*rbacpb.Principal{directIP("10.0.0.0", 8)}}}}}
	rt3, err := tcpRuntime(t, allowOther)
	if err != nil {
		t.Fatal(err)
	}
	sc3 := serveTCP(t, rt3, lis3)
	if echoes(t, lis3.Addr().String()) {
		t.Fatal("a connection no ALLOW policy matched was proxied")
	}

	for _, c := range []struct {
		sc   *httpfilter.Scope
		want []string
	}{
		{sc, []string{"tcp.rbac.allowed: 1\n"}},
		{sc2, []string{"tcp.rbac.denied: 1\n", "tcp.rbac.policy.ns[default]-policy[no-port]-rule[0].denied: 1\n"}},
		{sc3, []string{"tcp.rbac.denied: 1\n"}},
	} {
		var b strings.Builder
		c.sc.WriteText(&b)
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("stats lack %q:\n%s", w, b.String())
			}
		}
	}
	if ds := rbac.Recent(sc3); len(ds) != 1 || ds[0].Kind != "tcp" || ds[0].Allowed || ds[0].Reason != "no ALLOW policy matched" || ds[0].Source.Addr().String() != "127.0.0.1" {
		t.Errorf("decisions %+v", ds)
	}
}

// TestNetworkRBACNACK: what Envoy's network RBAC rejects (header rules),
// what it could never match (paths), a network RBAC not before tcp_proxy,
// and unsupported fields are NACKed naming the cause.
func TestNetworkRBACNACK(t *testing.T) {
	hdr := &rbacpb.Permission{Rule: &rbacpb.Permission_Header{Header: &route.HeaderMatcher{Name: ":method",
		HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}}}
	path := &rbacpb.Permission{Rule: &rbacpb.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{
		Path: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "/"}}}}}}
	rules := func(p *rbacpb.Permission) *rbacpb.RBAC {
		return &rbacpb.RBAC{Policies: map[string]*rbacpb.Policy{"p": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_AndRules{
			AndRules: &rbacpb.Permission_Set{Rules: []*rbacpb.Permission{p}}}}}, Principals: anyone}}}
	}
	for name, c := range map[string]struct {
		f    *rbactcp.RBAC
		want string
	}{
		"header":     {&rbactcp.RBAC{StatPrefix: "tcp.", Rules: rules(hdr)}, "header rule (header :method present)"},
		"path":       {&rbactcp.RBAC{StatPrefix: "tcp.", ShadowRules: rules(path)}, "path rule"},
		"delay_deny": {&rbactcp.RBAC{StatPrefix: "tcp.", DelayDeny: durationpb.New(time.Second)}, "delay_deny"},
	} {
		_, err := tcpRuntime(t, c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}
