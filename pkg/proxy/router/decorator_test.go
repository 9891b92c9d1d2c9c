package router

import (
	"slices"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestCompileDecorator: a route's decorator operation becomes the header
// value sent upstream, unless propagate is false or there is none.
func TestCompileDecorator(t *testing.T) {
	with := func(name string, d *route.Decorator) *route.Route {
		r := fwd(name, "c", prefix("/"+name))
		r.Decorator = d
		return r
	}
	rc := &route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*route.Route{
		with("plain", &route.Decorator{Operation: "web:80/plain*"}),
		with("propagated", &route.Decorator{Operation: "web:80/propagated*", Propagate: wrapperspb.Bool(true)}),
		with("kept", &route.Decorator{Operation: "web:80/kept*", Propagate: wrapperspb.Bool(false)}),
		with("none", nil),
	}}}}
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"plain": {"web:80/plain*"}, "propagated": {"web:80/propagated*"}, "kept": nil, "none": nil,
	}
	for _, r := range tbl.any.Routes {
		if !slices.Equal(r.Decorator, want[r.Name]) {
			t.Errorf("route %s: Decorator %q, want %q", r.Name, r.Decorator, want[r.Name])
		}
		if r.Decorator != nil && cap(r.Decorator) != 1 {
			t.Errorf("route %s: Decorator has room to grow; an append by a header edit would change it for every request", r.Name)
		}
	}
}
