package ztunnel

import (
	"net/netip"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/workloadapi"
)

// TestLoadBalancingModes: FAILOVER picks the best locality rank and
// falls over to the next when it is empty; STRICT picks only endpoints
// matching every preference and refuses when none does; ALLOW_ALL takes
// unhealthy endpoints too.
func TestLoadBalancingModes(t *testing.T) {
	const svcKey = "shop/web.shop.svc.cluster.local"
	ep := func(uid, ip, zone, node string, healthy bool) *workloadapi.Address {
		a := wlAddr(uid, "shop", uid, ip)
		w := a.GetWorkload()
		w.Locality = &workloadapi.Locality{Region: "r", Zone: zone}
		w.Node = node
		if !healthy {
			w.Status = workloadapi.WorkloadStatus_UNHEALTHY
		}
		w.Services = map[string]*workloadapi.PortList{svcKey: {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}}
		return a
	}
	svc := func(lb *workloadapi.LoadBalancing) *workloadapi.Address {
		return &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
			Name: "web", Namespace: "shop", Hostname: "web.shop.svc.cluster.local", LoadBalancing: lb,
			Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.10").AsSlice()}},
			Ports:     []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}}}
	}
	src := &workload{Workload: &workloadapi.Workload{Locality: &workloadapi.Locality{Region: "r", Zone: "a"}, Node: "n1"}}
	picks := func(addrs map[string]*workloadapi.Address) map[string]bool {
		ix, err := buildIndex(addrs, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for range 50 {
			if up, ok := ix.findUpstream(src, netip.MustParseAddrPort("10.96.0.10:80")); ok {
				seen[up.wl.GetUid()] = true
			}
		}
		return seen
	}
	failover := &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_FAILOVER,
		RoutingPreference: []workloadapi.LoadBalancing_Scope{workloadapi.LoadBalancing_REGION, workloadapi.LoadBalancing_ZONE}}
	near, far := ep("near", "10.0.0.2", "a", "n2", true), ep("far", "10.0.0.3", "b", "n3", true)
	if got := picks(map[string]*workloadapi.Address{"s": svc(failover), "near": near, "far": far}); len(got) != 1 || !got["near"] {
		t.Errorf("FAILOVER with a same-zone endpoint picked %v", got)
	}
	if got := picks(map[string]*workloadapi.Address{"s": svc(failover), "far": far}); !got["far"] {
		t.Errorf("FAILOVER without one picked %v", got)
	}
	strict := &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_STRICT,
		RoutingPreference: []workloadapi.LoadBalancing_Scope{workloadapi.LoadBalancing_NODE}}
	local := ep("local", "10.0.0.4", "b", "n1", true)
	if got := picks(map[string]*workloadapi.Address{"s": svc(strict), "near": near, "local": local}); len(got) != 1 || !got["local"] {
		t.Errorf("STRICT node picked %v", got)
	}
	if got := picks(map[string]*workloadapi.Address{"s": svc(strict), "near": near}); len(got) != 0 {
		t.Errorf("STRICT node without a local endpoint picked %v", got)
	}
	sick := ep("sick", "10.0.0.5", "a", "n1", false)
	if got := picks(map[string]*workloadapi.Address{"s": svc(nil), "sick": sick}); len(got) != 0 {
		t.Errorf("an unhealthy endpoint was picked: %v", got)
	}
	all := &workloadapi.LoadBalancing{HealthPolicy: workloadapi.LoadBalancing_ALLOW_ALL}
	if got := picks(map[string]*workloadapi.Address{"s": svc(all), "sick": sick}); !got["sick"] {
		t.Errorf("ALLOW_ALL did not pick the unhealthy endpoint: %v", got)
	}
}
