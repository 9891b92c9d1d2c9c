package ztunnel

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

func exact(s string) *security.StringMatch {
	return &security.StringMatch{MatchType: &security.StringMatch_Exact{Exact: s}}
}

func wlAddr(uid, ns, sa, ip string, policies ...string) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{
		Uid: uid, Name: uid, Namespace: ns, ServiceAccount: sa, Addresses: [][]byte{netip.MustParseAddr(ip).AsSlice()},
		TunnelProtocol: workloadapi.TunnelProtocol_HBONE, AuthorizationPolicies: policies}}}
}

// TestAuthorize: ztunnel's assert_rbac over policies of each scope — a
// DENY match wins, no ALLOW policy allows, ALLOW policies need a match,
// dry-run ones decide nothing, plaintext has no principal or namespace,
// an empty match never matches, a rule without matches always does, and a
// policy the workload names but the control plane did not send fails
// closed.
func TestAuthorize(t *testing.T) {
	addrs := map[string]*workloadapi.Address{
		"server": wlAddr("server", "shop", "server", "10.0.0.2", "shop/only-client"),
		"db":     wlAddr("db", "data", "db", "10.0.0.3"),
		"ghost":  wlAddr("ghost", "data", "db", "10.0.0.4", "data/missing"),
	}
	authz := map[string]*security.Authorization{
		"shop/only-client": {Name: "only-client", Namespace: "shop", Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_ALLOW,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{
				{Principals: []*security.StringMatch{exact("cluster.local/ns/shop/sa/client")}}}}}}}},
		"shop/deny-9000": {Name: "deny-9000", Namespace: "shop", Scope: security.Scope_NAMESPACE, Action: security.Action_DENY,
			Groups: []*security.Group{{Rules: []*security.Rules{{Matches: []*security.Match{{DestinationPorts: []uint32{9000}}}}}}}},
		"istio-system/dry": {Name: "dry", Namespace: "istio-system", Scope: security.Scope_GLOBAL, Action: security.Action_DENY, DryRun: true,
			Groups: []*security.Group{{Rules: []*security.Rules{{}}}}},
		"data/ns-presence": {Name: "ns-presence", Namespace: "data", Scope: security.Scope_NAMESPACE, Action: security.Action_ALLOW,
			Groups: []*security.Group{{Rules: []*security.Rules{
				{Matches: []*security.Match{{}, {Namespaces: []*security.StringMatch{{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}}}}},
				{}, // no matches: always holds
			}}}},
	}
	ix, err := buildIndex(addrs, authz)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("10.0.0.1:40000")
	cases := []struct {
		name, dst, wl, peer string
		allowed             bool
	}{
		{"allowed principal", "10.0.0.2:8080", "server", "spiffe://cluster.local/ns/shop/sa/client", true},
		{"other principal", "10.0.0.2:8080", "server", "spiffe://cluster.local/ns/shop/sa/other", false},
		{"plaintext has no principal", "10.0.0.2:8080", "server", "", false},
		{"namespace deny wins", "10.0.0.2:9000", "server", "spiffe://cluster.local/ns/shop/sa/client", false},
		{"presence of a namespace", "10.0.0.3:5432", "db", "spiffe://cluster.local/ns/shop/sa/client", true},
		{"plaintext has no namespace", "10.0.0.3:5432", "db", "", false},
		{"unknown policy fails closed", "10.0.0.4:5432", "ghost", "spiffe://cluster.local/ns/shop/sa/client", false},
	}
	for _, c := range cases {
		d := ix.authorize(ix.workloads[c.wl], conn{src: src, dst: netip.MustParseAddrPort(c.dst), peer: c.peer})
		if d.allowed != c.allowed {
			t.Errorf("%s: allowed=%v (%s), want %v", c.name, d.allowed, d.reason, c.allowed)
		}
	}
}

// TestFindUpstream: a service VIP picks a healthy endpoint on the
// caller's network and maps the port (the endpoint's own target port
// first); a workload address goes to that workload; an unknown address
// passes through; a VIP port the service lacks is refused.
func TestFindUpstream(t *testing.T) {
	a := wlAddr("a", "shop", "a", "10.0.0.2")
	a.GetWorkload().Services = map[string]*workloadapi.PortList{"shop/web.shop.svc.cluster.local": {Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 8081}}}}
	b := wlAddr("b", "shop", "b", "10.0.0.3")
	b.GetWorkload().Status = workloadapi.WorkloadStatus_UNHEALTHY
	b.GetWorkload().Services = map[string]*workloadapi.PortList{"shop/web.shop.svc.cluster.local": {Ports: []*workloadapi.Port{{ServicePort: 80}}}}
	svc := &workloadapi.Address{Type: &workloadapi.Address_Service{Service: &workloadapi.Service{
		Name: "web", Namespace: "shop", Hostname: "web.shop.svc.cluster.local",
		Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.10").AsSlice()}},
		Ports:     []*workloadapi.Port{{ServicePort: 80, TargetPort: 8080}}}}}
	ix, err := buildIndex(map[string]*workloadapi.Address{"a": a, "b": b, "svc": svc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // b is unhealthy: always a, on its own target port
		up, ok := ix.findUpstream(&workload{Workload: &workloadapi.Workload{}}, netip.MustParseAddrPort("10.96.0.10:80"))
		if !ok || up.wl == nil || up.wl.GetUid() != "a" || up.port != 8081 || up.service == nil {
			t.Fatalf("VIP: %+v ok=%v", up, ok)
		}
	}
	if _, ok := ix.findUpstream(&workload{Workload: &workloadapi.Workload{}}, netip.MustParseAddrPort("10.96.0.10:81")); ok {
		t.Error("a port the service does not have was not refused")
	}
	if up, ok := ix.findUpstream(&workload{Workload: &workloadapi.Workload{}}, netip.MustParseAddrPort("10.0.0.3:7000")); !ok || up.wl.GetUid() != "b" || up.port != 7000 {
		t.Errorf("workload address: %+v", up)
	}
	if up, ok := ix.findUpstream(&workload{Workload: &workloadapi.Workload{}}, netip.MustParseAddrPort("192.0.2.1:443")); !ok || up.wl != nil || up.port != 443 {
		t.Errorf("passthrough: %+v", up)
	}
}

// TestRefusedAddresses: what the node proxy cannot honour is refused by
// name rather than ignored.
func TestRefusedAddresses(t *testing.T) {
	w := wlAddr("w", "shop", "w", "10.0.0.2")
	w.GetWorkload().Waypoint = &workloadapi.GatewayAddress{}
	if _, err := buildIndex(map[string]*workloadapi.Address{"w": w}, nil); err == nil {
		t.Error("a workload with a waypoint was accepted")
	}
	bad := wlAddr("x", "shop", "x", "10.0.0.2")
	bad.GetWorkload().Addresses = [][]byte{{1, 2, 3}}
	if _, err := buildIndex(map[string]*workloadapi.Address{"x": bad}, nil); err == nil {
		t.Error("a 3-byte address was accepted")
	}
}
