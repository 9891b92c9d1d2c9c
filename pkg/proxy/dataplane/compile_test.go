package dataplane

import (
	"strings"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// withType is res with the resources of one type replaced, as the xDS
// client builds a candidate from one response.
func withType(res xdsclient.Resources, typ string, items map[string]proto.Message) xdsclient.Resources {
	out := xdsclient.Resources{Items: map[string]map[string]proto.Message{}, Versions: res.Versions}
	for t, m := range res.Items {
		out.Items[t] = m
	}
	out.Items[typ] = items
	return out
}

// TestCompileReusesUnchanged: an EDS-only update rebuilds only the cluster
// whose endpoints changed; listeners and route tables are the same values;
// a changed route gives a new table and nothing else.
func TestCompileReusesUnchanged(t *testing.T) {
	stats := NewStatsStore()
	rt1 := compileGolden(t, nil, stats)
	if rt1.Counts.ListenersReused+rt1.Counts.RoutesReused+rt1.Counts.ClustersReused != 0 || rt1.Counts.ClustersCompiled == 0 {
		t.Fatalf("first compile counts %+v", rt1.Counts)
	}

	// Equal resources in new messages (a re-sent type) are reused too.
	rt2 := compileGolden(t, rt1, stats)
	if c := rt2.Counts; c.ListenersCompiled+c.RoutesCompiled+c.ClustersCompiled != 0 {
		t.Fatalf("recompiling identical resources: %+v, want everything reused", c)
	}

	// EDS only: one assignment changes.
	eds := map[string]proto.Message{}
	var changed string
	for name, m := range rt2.Source.Items[xdsclient.EndpointType] {
		cla := m.(*endpoint.ClusterLoadAssignment)
		if changed == "" && len(cla.GetEndpoints()) > 0 && len(cla.Endpoints[0].LbEndpoints) > 0 {
			cla = proto.Clone(cla).(*endpoint.ClusterLoadAssignment)
			cla.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().Address = "127.0.0.99"
			changed = name
		}
		eds[name] = cla
	}
	if changed == "" {
		t.Fatal("golden case has no endpoints")
	}
	rt3, _, err := Compile(CompileOptions{Resources: withType(rt2.Source, xdsclient.EndpointType, eds), Previous: rt2, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	for n, l := range rt2.Listeners {
		if rt3.Listeners[n] != l {
			t.Errorf("listener %s rebuilt by an EDS-only update", n)
		}
	}
	for n, tb := range rt2.Routes {
		if rt3.Routes[n] != tb {
			t.Errorf("route table %s rebuilt by an EDS-only update", n)
		}
	}
	rebuilt := 0
	for n, c := range rt2.Clusters {
		if rt3.Clusters[n] == c {
			continue
		}
		rebuilt++
		found := false
		for _, h := range rt3.Clusters[n].Hosts {
			found = found || strings.HasPrefix(h.Address, "127.0.0.99:")
		}
		if !found {
			t.Errorf("cluster %s rebuilt without the changed endpoint", n)
		}
	}
	if rebuilt != 1 || rt3.Counts.ClustersCompiled != 1 || rt3.Counts.ListenersCompiled != 0 || rt3.Counts.RoutesCompiled != 0 {
		t.Errorf("EDS-only update: %d clusters rebuilt, counts %+v; want 1 cluster compiled and nothing else", rebuilt, rt3.Counts)
	}

	// One route configuration changes.
	rds := map[string]proto.Message{}
	var changedRoute string
	for name, m := range rt3.Source.Items[xdsclient.RouteType] {
		rc := m.(*route.RouteConfiguration)
		if changedRoute == "" && rt3.Routes[name] != nil && len(rc.VirtualHosts) > 0 {
			rc = proto.Clone(rc).(*route.RouteConfiguration)
			rc.VirtualHosts[0].Domains = append(rc.VirtualHosts[0].Domains, "added.example.com")
			changedRoute = name
		}
		rds[name] = rc
	}
	rt4, _, err := Compile(CompileOptions{Resources: withType(rt3.Source, xdsclient.RouteType, rds), Previous: rt3, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	for n, tb := range rt3.Routes {
		if same := rt4.Routes[n] == tb; same == (n == changedRoute) {
			t.Errorf("route table %s: reused %v after an update that changed %s", n, same, changedRoute)
		}
	}
	if c := rt4.Counts; c.RoutesCompiled != 1 || c.ListenersCompiled != 0 || c.ClustersCompiled != 0 {
		t.Errorf("route update counts %+v, want one route compiled", c)
	}
}
