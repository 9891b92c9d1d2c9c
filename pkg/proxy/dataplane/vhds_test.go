package dataplane

import (
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// vhdsResources turns the golden case's route configuration name into one
// with vhds: its first virtual host stays in RDS, the others and n more
// come from VHDS as "<name>/<virtual host>".
func vhdsResources(t *testing.T, src xdsclient.Resources, name string, n int) xdsclient.Resources {
	rc := proto.Clone(src.Items[xdsclient.RouteType][name]).(*route.RouteConfiguration)
	if len(rc.VirtualHosts) < 2 {
		t.Fatalf("route configuration %s has %d virtual hosts, want 2 or more", name, len(rc.VirtualHosts))
	}
	vhosts := map[string]proto.Message{}
	for _, vh := range rc.VirtualHosts[1:] {
		vh.Name = name + "/" + vh.Name
		vhosts[vh.Name] = vh
	}
	for i := range n {
		vh := proto.Clone(rc.VirtualHosts[1]).(*route.VirtualHost)
		vh.Name = fmt.Sprintf("%s/extra-%04d", name, i)
		vh.Domains = []string{fmt.Sprintf("extra-%04d.example", i)}
		vhosts[vh.Name] = vh
	}
	rc.VirtualHosts = rc.VirtualHosts[:1]
	rc.Vhds = &route.Vhds{ConfigSource: &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}
	res := withType(src, xdsclient.RouteType, withItem(src.Items[xdsclient.RouteType], name, rc))
	res = withType(res, xdsclient.VirtualHostType, vhosts)
	res.VHDSAnswered = map[string]bool{}
	return res
}

func withItem(items map[string]proto.Message, name string, m proto.Message) map[string]proto.Message {
	out := maps.Clone(items)
	out[name] = m
	return out
}

// biggestRoute is the golden case's served route configuration with the
// most virtual hosts.
func biggestRoute(rt *Runtime) string {
	best, n := "", 0
	for _, name := range slices.Sorted(maps.Keys(rt.Routes)) {
		if k := len(rt.Source.Items[xdsclient.RouteType][name].(*route.RouteConfiguration).VirtualHosts); k > n {
			best, n = name, k
		}
	}
	return best
}

// A route configuration with vhds warms until its first VHDS answer, then
// serves its own virtual hosts followed by the VHDS ones by name; a VHDS
// update that changes one virtual host of a thousand compiles that one.
func TestCompileVHDS(t *testing.T) {
	stats := NewStatsStore()
	golden := compileGolden(t, nil, stats)
	name := biggestRoute(golden)
	res := vhdsResources(t, golden.Source, name, 1000)

	rt1, deps, err := Compile(CompileOptions{Resources: res, Previous: golden, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deps.VirtualHosts, []string{name}) {
		t.Errorf("VHDS dependencies %v, want [%s]", deps.VirtualHosts, name)
	}
	if rt1.Routes[name] != nil || !slices.Contains(rt1.Warming, "virtual hosts "+name) || rt1.Ready() {
		t.Fatalf("before the first VHDS answer: table served %v, warming %v, ready %v", rt1.Routes[name] != nil, rt1.Warming, rt1.Ready())
	}

	res.VHDSAnswered = map[string]bool{name: true}
	rt2, _, err := Compile(CompileOptions{Resources: res, Previous: rt1, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	tb := rt2.Routes[name]
	if tb == nil || !rt2.Ready() {
		t.Fatalf("after the answer: table served %v, warming %v", tb != nil, rt2.Warming)
	}
	// The table checked while warming is served as it is.
	if c := rt2.Counts; c.VirtualHostsCompiled != 0 || c.RoutesReused == 0 {
		t.Errorf("after an answer that changed nothing: counts %+v, want the warming table reused", c)
	}
	rc := res.Items[xdsclient.RouteType][name].(*route.RouteConfiguration)
	want := []string{rc.VirtualHosts[0].Name}
	want = append(want, slices.Sorted(maps.Keys(res.Items[xdsclient.VirtualHostType]))...)
	if got := tb.VirtualHostNames(); !slices.Equal(got, want) {
		t.Errorf("virtual hosts %v..., want %v...", got[:3], want[:3])
	}
	req, _ := http.NewRequest("GET", "http://extra-0007.example/", nil)
	if r := tb.Match(req); r == nil || r.VHost != name+"/extra-0007" {
		t.Errorf("extra-0007.example routed to %+v", r)
	}

	// One VHDS virtual host changes (a new message, as a response brings).
	vhosts := maps.Clone(res.Items[xdsclient.VirtualHostType])
	changed := proto.Clone(vhosts[name+"/extra-0500"]).(*route.VirtualHost)
	changed.Domains = []string{"moved.example"}
	vhosts[changed.Name] = changed
	res3 := withType(res, xdsclient.VirtualHostType, vhosts)
	res3.VHDSAnswered = res.VHDSAnswered
	rt3, _, err := Compile(CompileOptions{Resources: res3, Previous: rt2, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	total := len(want)
	if c := rt3.Counts; c.RoutesCompiled != 1 || c.VirtualHostsCompiled != 1 || c.VirtualHostsReused < total-1 {
		t.Errorf("one virtual host changed: counts %+v, want 1 table and 1 of %d virtual hosts compiled", c, total)
	}
	req, _ = http.NewRequest("GET", "http://moved.example/", nil)
	if r := rt3.Routes[name].Match(req); r == nil || r.VHost != changed.Name {
		t.Errorf("moved.example routed to %+v", r)
	}

	// Nothing changed: the table is the same.
	rt4, _, err := Compile(CompileOptions{Resources: res3, Previous: rt3, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	if rt4.Routes[name] != rt3.Routes[name] || rt4.Counts.RoutesCompiled != 0 {
		t.Errorf("unchanged VHDS view: table reused %v, counts %+v", rt4.Routes[name] == rt3.Routes[name], rt4.Counts)
	}
	if reflect.ValueOf(rt4.vhds.groups).UnsafePointer() != reflect.ValueOf(rt3.vhds.groups).UnsafePointer() {
		t.Error("the same VirtualHost map was grouped again")
	}

	// A VHDS virtual host that breaks a rule is an error naming it.
	bad := proto.Clone(changed).(*route.VirtualHost)
	bad.Domains = nil
	res5 := withType(res3, xdsclient.VirtualHostType, withItem(vhosts, bad.Name, bad))
	res5.VHDSAnswered = res.VHDSAnswered
	if _, _, err := Compile(CompileOptions{Resources: res5, Previous: rt4, Stats: stats}); err == nil {
		t.Error("a virtual host without domains was accepted")
	} else if want := fmt.Sprintf("virtual host %q", bad.Name); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
}
