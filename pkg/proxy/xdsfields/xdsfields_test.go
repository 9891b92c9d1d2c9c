package xdsfields

import (
	"slices"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestUnsupported(t *testing.T) {
	ra := &route.RouteAction{IdleTimeout: durationpb.New(1), PrefixRewrite: "/", Timeout: durationpb.New(1),
		HostRewriteSpecifier: &route.RouteAction_AutoHostRewrite{}}
	got := Unsupported(ra, map[protoreflect.Name]bool{"timeout": true})
	// In field-number order: prefix_rewrite 5, auto_host_rewrite 7, idle_timeout 24.
	if want := []string{"prefix_rewrite", "auto_host_rewrite", "idle_timeout"}; !slices.Equal(got, want) {
		t.Errorf("Unsupported = %v, want %v", got, want)
	}
	if got := Unsupported(&route.RouteAction{}, nil); len(got) != 0 {
		t.Errorf("nothing set: %v", got)
	}
}

func TestTableCheck(t *testing.T) {
	tbl := Table{
		"envoy.config.route.v3.VirtualHost": {"name": true, "routes": true},
		"envoy.config.route.v3.Route":       {"name": true, "route": true},
		"envoy.config.route.v3.RouteAction": {"cluster": true},
	}
	vh := &route.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*route.Route{
		{Name: "a", Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "c"}}}},
		{Name: "b", Action: &route.Route_Route{Route: &route.RouteAction{IdleTimeout: durationpb.New(1)}}, StatPrefix: "s"},
	}}
	err := tbl.Check(vh)
	if want := "domains, routes[1].stat_prefix, routes[1].route.idle_timeout: not supported"; err == nil || err.Error() != want {
		t.Errorf("Check = %v, want %q", err, want)
	}
	// Types the caller checks itself are not descended into.
	if err := tbl.Check(&route.VirtualHost{Routes: vh.Routes}, "envoy.config.route.v3.Route"); err != nil {
		t.Errorf("Check skipping routes = %v", err)
	}
}
