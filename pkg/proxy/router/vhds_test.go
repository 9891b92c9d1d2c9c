package router_test

import (
	"fmt"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

func adsVHDS() *route.Vhds {
	return &route.Vhds{ConfigSource: &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}
}

func directVHost(name string, domains ...string) *route.VirtualHost {
	return &route.VirtualHost{Name: name, Domains: domains, Routes: []*route.Route{{
		Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 200}}}}}
}

// vhds is honoured only as the xDS client resolved it, over ADS; its
// config source's other fields are NACKed by name, and so are VHDS
// virtual hosts that break a rule or clash with the configuration's own.
func TestVHDSFields(t *testing.T) {
	rc := func(edit func(*route.Vhds)) *route.RouteConfiguration {
		v := adsVHDS()
		if edit != nil {
			edit(v)
		}
		return &route.RouteConfiguration{Name: "rc", Vhds: v, VirtualHosts: []*route.VirtualHost{directVHost("local", "local.example")}}
	}
	if _, err := router.Compile(rc(nil)); err == nil || err.Error() != `route config "rc": vhds: not supported` {
		t.Errorf("vhds not resolved: err = %v", err)
	}
	good := router.CompileOptions{Config: rc(nil), VHDSResolved: true, VHDS: []*route.VirtualHost{directVHost("rc/a", "a.example")}}
	if _, err := router.CompileWith(good); err != nil {
		t.Fatalf("resolved vhds over ads: %v", err)
	}
	for _, c := range []struct {
		opts router.CompileOptions
		want string
	}{
		{router.CompileOptions{Config: rc(func(v *route.Vhds) { v.ConfigSource.InitialFetchTimeout = durationpb.New(1) }), VHDSResolved: true},
			`route config "rc": vhds.config_source.initial_fetch_timeout: not supported`},
		{router.CompileOptions{Config: rc(func(v *route.Vhds) {
			v.ConfigSource.ConfigSourceSpecifier = &core.ConfigSource_ApiConfigSource{ApiConfigSource: &core.ApiConfigSource{ApiType: core.ApiConfigSource_DELTA_GRPC}}
		}), VHDSResolved: true}, `route config "rc": vhds.config_source.api_config_source: not supported`},
		{router.CompileOptions{Config: rc(func(v *route.Vhds) { v.ConfigSource = nil }), VHDSResolved: true},
			`route config "rc": vhds.config_source: only ads is supported`},
		{router.CompileOptions{Config: rc(nil), VHDSResolved: true, VHDS: []*route.VirtualHost{directVHost("rc/a")}},
			`route config "rc": virtual host "rc/a": invalid VirtualHost.Domains`},
		{router.CompileOptions{Config: rc(nil), VHDSResolved: true, VHDS: []*route.VirtualHost{directVHost("rc/a", "local.example")}},
			`route config "rc": domain "local.example" in two virtual hosts`},
	} {
		if _, err := router.CompileWith(c.opts); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

// A virtual host that is the message, or an equal one, the previous table
// compiled is reused; the others are compiled.
func TestCompileReusesVirtualHosts(t *testing.T) {
	vhosts := []*route.VirtualHost{directVHost("rc/a", "a.example"), directVHost("rc/b", "b.example")}
	rc := &route.RouteConfiguration{Name: "rc", Vhds: adsVHDS(), VirtualHosts: []*route.VirtualHost{directVHost("local", "*")}}
	t1, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: true, VHDS: vhosts})
	if err != nil || t1.VirtualHostsCompiled != 3 {
		t.Fatalf("first compile: %v, %d compiled", err, t1.VirtualHostsCompiled)
	}
	// The RDS configuration re-sent (equal, new messages), one VHDS host changed.
	rc2 := proto.Clone(rc).(*route.RouteConfiguration)
	vhosts2 := []*route.VirtualHost{vhosts[0], directVHost("rc/b", "b2.example")}
	t2, err := router.CompileWith(router.CompileOptions{Config: rc2, VHDSResolved: true, VHDS: vhosts2, Previous: t1})
	if err != nil {
		t.Fatal(err)
	}
	if t2.VirtualHostsCompiled != 1 || t2.VirtualHostsReused != 2 {
		t.Errorf("compiled %d, reused %d; want 1 and 2", t2.VirtualHostsCompiled, t2.VirtualHostsReused)
	}
	if t2.VirtualHost("a.example") != t1.VirtualHost("a.example") || t2.VirtualHost("b2.example").Name != "rc/b" || t2.VirtualHost("b.example").Name != "local" {
		t.Error("the reused or compiled virtual hosts do not route as their messages say")
	}
	if !t2.SameVHDS(vhosts2) || t2.SameVHDS(vhosts) {
		t.Error("SameVHDS does not tell the VHDS virtual hosts the table was built with")
	}
}

// thousandVHosts is a VHDS route configuration of n virtual hosts with a
// few routes each.
func thousandVHosts(n int) (*route.RouteConfiguration, []*route.VirtualHost) {
	rc := &route.RouteConfiguration{Name: "rc", Vhds: adsVHDS()}
	var vhosts []*route.VirtualHost
	for i := range n {
		vh := directVHost(fmt.Sprintf("rc/vh-%04d", i), fmt.Sprintf("vh-%04d.example", i), fmt.Sprintf("vh-%04d.example:80", i))
		for j := range 4 {
			vh.Routes = append([]*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: fmt.Sprintf("/p%d", j)}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "c"},
					Timeout: durationpb.New(0)}}}}, vh.Routes...)
		}
		vhosts = append(vhosts, vh)
	}
	return rc, vhosts
}

// BenchmarkCompileVHDS: a 1,000-virtual-host table built from scratch, and
// rebuilt after one virtual host changed (the VHDS update).
func BenchmarkCompileVHDS(b *testing.B) {
	rc, vhosts := thousandVHosts(1000)
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if _, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: true, VHDS: vhosts}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-changed", func(b *testing.B) {
		prev, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: true, VHDS: vhosts})
		if err != nil {
			b.Fatal(err)
		}
		next := append([]*route.VirtualHost(nil), vhosts...)
		next[500] = proto.Clone(vhosts[500]).(*route.VirtualHost)
		next[500].Domains = []string{"moved.example"}
		for b.Loop() {
			t, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: true, VHDS: next, Previous: prev})
			if err != nil || t.VirtualHostsCompiled != 1 {
				b.Fatal(err, t.VirtualHostsCompiled)
			}
		}
	})
}
