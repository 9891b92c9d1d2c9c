package xdsgen_test

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// wdsPush reads a testdata file into a push context.
func wdsPush(t *testing.T, file string, mesh *meshv1alpha1.MeshConfig, extra ...string) *model.PushContext {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range extra {
		data = append(data, "\n---\n"+e...)
	}
	dec := config.Decode(data, config.DecodeOptions{File: file})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return model.NewPushContext(model.PushOptions{Version: "1", Mesh: mesh, Resources: dec.Resources})
}

func ztunnelProxy() *model.Proxy {
	p := &model.Proxy{Type: model.Ztunnel, Name: "ztunnel-abc", Namespace: "istio-system", IPs: []string{"10.0.0.100"}}
	p.ID = p.NodeID()
	return p
}

// TestWDSGenerate checks the workload API generated for a ztunnel from a
// small mesh: workloads from WorkloadEntries and a ServiceEntry endpoint,
// services from a Service and ServiceEntries, policies as istiod
// converts them.
func TestWDSGenerate(t *testing.T) {
	pc := wdsPush(t, "testdata/wds.yaml", &meshv1alpha1.MeshConfig{TrustDomain: "example.org"})
	res, err := xdsgen.Generate(pc, ztunnelProxy())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listeners)+len(res.Clusters)+len(res.Routes)+len(res.Endpoints) != 0 {
		t.Fatalf("a ztunnel got Envoy resources: %d listeners, %d clusters", len(res.Listeners), len(res.Clusters))
	}
	byName := map[string]*workloadapi.Address{}
	var names []string
	for _, a := range res.Addresses {
		byName[xdsgen.AddressName(a)] = a
		names = append(names, xdsgen.AddressName(a))
	}
	wantNames := []string{
		"Kubernetes/networking.istio.io/ServiceEntry/shop/ext/192.0.2.10",
		"Kubernetes/networking.istio.io/WorkloadEntry/shop/db-1",
		"Kubernetes/networking.istio.io/WorkloadEntry/shop/web-1",
		"shop/api.example.com", "shop/db.shop.internal", "shop/web.shop.svc.cluster.local",
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("addresses:\n got %q\nwant %q", names, wantNames)
	}

	db := byName["Kubernetes/networking.istio.io/WorkloadEntry/shop/db-1"].GetWorkload()
	wantDB := &workloadapi.Workload{
		Uid: "Kubernetes/networking.istio.io/WorkloadEntry/shop/db-1", Name: "db-1", Namespace: "shop",
		Addresses: [][]byte{netip.MustParseAddr("10.0.0.5").AsSlice()}, ServiceAccount: "db", TrustDomain: "example.org",
		ClusterId: "Kubernetes", Status: workloadapi.WorkloadStatus_HEALTHY, WorkloadType: workloadapi.WorkloadType_POD,
		WorkloadName: "db-1", CanonicalName: "db", CanonicalRevision: "v2", TunnelProtocol: workloadapi.TunnelProtocol_HBONE,
		Locality:              &workloadapi.Locality{Region: "eu", Zone: "west-1", Subzone: "a"},
		Services:              map[string]*workloadapi.PortList{"shop/db.shop.internal": {Ports: []*workloadapi.Port{{ServicePort: 5432, TargetPort: 5433}}}},
		AuthorizationPolicies: []string{"shop/deny-mixed", "shop/deny-post"},
	}
	if !proto.Equal(db, wantDB) {
		t.Errorf("db-1:\n got %v\nwant %v", protojson.Format(db), protojson.Format(wantDB))
	}
	web := byName["Kubernetes/networking.istio.io/WorkloadEntry/shop/web-1"].GetWorkload()
	if !web.GetNativeTunnel() || web.GetTunnelProtocol() != workloadapi.TunnelProtocol_HBONE || web.GetCapacity().GetValue() != 3 {
		t.Errorf("web-1: tunnel %v native %v capacity %v", web.GetTunnelProtocol(), web.GetNativeTunnel(), web.GetCapacity())
	}
	if got := web.GetServices()["shop/web.shop.svc.cluster.local"].GetPorts(); len(got) != 1 || got[0].TargetPort != 8080 {
		t.Errorf("web-1 services: %v", web.GetServices())
	}
	if got := web.GetAuthorizationPolicies(); !slices.Equal(got, []string{"shop/allow-get", "shop/allow-web"}) {
		t.Errorf("web-1 policies: %q", got)
	}
	ext := byName["Kubernetes/networking.istio.io/ServiceEntry/shop/ext/192.0.2.10"].GetWorkload()
	// The namespace's istio.io/dataplane-mode: ambient label does not make
	// an endpoint HBONE (istiod's setTunnelProtocol reads the object's
	// redirection annotation and tunnel label only).
	if ext.GetServiceAccount() != "ext" || ext.GetName() != "ext" || len(ext.GetServices()["shop/api.example.com"].GetPorts()) != 1 ||
		ext.GetTunnelProtocol() != workloadapi.TunnelProtocol_NONE {
		t.Errorf("ServiceEntry endpoint: %v", protojson.Format(ext))
	}

	svc := byName["shop/web.shop.svc.cluster.local"].GetService()
	wantSvc := &workloadapi.Service{Name: "web", Namespace: "shop", Hostname: "web.shop.svc.cluster.local", Canonical: true,
		Addresses: []*workloadapi.NetworkAddress{{Address: netip.MustParseAddr("10.96.0.10").AsSlice()}},
		// A named targetPort is 0: each workload's PortList resolves it.
		Ports: []*workloadapi.Port{{ServicePort: 80, TargetPort: 0, AppProtocol: workloadapi.AppProtocol_HTTP11}},
		// The namespace's traffic-distribution annotation.
		LoadBalancing: &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_FAILOVER, RoutingPreference: []workloadapi.LoadBalancing_Scope{
			workloadapi.LoadBalancing_NETWORK, workloadapi.LoadBalancing_REGION, workloadapi.LoadBalancing_ZONE}},
	}
	if !proto.Equal(svc, wantSvc) {
		t.Errorf("service web:\n got %v\nwant %v", protojson.Format(svc), protojson.Format(wantSvc))
	}
	dbSvc := byName["shop/db.shop.internal"].GetService()
	if p := dbSvc.GetPorts(); len(p) != 1 || p[0].TargetPort != 5432 || p[0].AppProtocol != workloadapi.AppProtocol_TCP ||
		len(dbSvc.GetAddresses()) != 1 || netip.AddrFrom4([4]byte(dbSvc.GetAddresses()[0].GetAddress())).String() != "240.0.0.5" {
		t.Errorf("service db: %v", protojson.Format(dbSvc))
	}
	checkWDSAuthorizations(t, res)
}

func checkWDSAuthorizations(t *testing.T, res *xdsgen.Resources) {
	t.Helper()
	byName := map[string]*security.Authorization{}
	var names []string
	for _, a := range res.Authorizations {
		byName[xdsgen.AuthorizationName(a)] = a
		names = append(names, xdsgen.AuthorizationName(a))
	}
	// AUDIT is not sent (istiod: "ztunnel does not support the AUDIT action").
	if want := []string{"istio-system/global-deny", "shop/allow-get", "shop/allow-web", "shop/deny-mixed", "shop/deny-post"}; !slices.Equal(names, want) {
		t.Fatalf("authorizations %q, want %q", names, want)
	}
	g := byName["istio-system/global-deny"]
	if g.Scope != security.Scope_GLOBAL || g.Action != security.Action_DENY || len(g.Groups) != 1 ||
		g.Groups[0].Rules[0].Matches[0].NotNamespaces[0].GetExact() != "shop" {
		t.Errorf("global-deny: %v", protojson.Format(g))
	}
	aw := byName["shop/allow-web"]
	wantAW := &security.Authorization{Name: "allow-web", Namespace: "shop", Scope: security.Scope_WORKLOAD_SELECTOR,
		Action: security.Action_ALLOW, Groups: []*security.Group{{Rules: []*security.Rules{
			{Matches: []*security.Match{{DestinationPorts: []uint32{8080}}}},
			{Matches: []*security.Match{
				{Principals: []*security.StringMatch{{MatchType: &security.StringMatch_Exact{Exact: "cluster.local/ns/shop/sa/db"}}}},
				{ServiceAccounts: []*security.ServiceAccountMatch{{Namespace: "shop", ServiceAccount: "db"}}},
			}},
			{Matches: []*security.Match{{SourceIps: []*security.Address{{Address: []byte{10, 0, 0, 0}, Length: 8}}}}},
		}}}}
	if !proto.Equal(aw, wantAW) {
		t.Errorf("allow-web:\n got %v\nwant %v", protojson.Format(aw), protojson.Format(wantAW))
	}
	// ALLOW with an HTTP attribute: the rule is dropped (matches nothing,
	// stricter); DENY: the HTTP match is left empty (ztunnel skips it), the
	// rest kept.
	if ag := byName["shop/allow-get"]; len(ag.Groups) != 0 || ag.Action != security.Action_ALLOW {
		t.Errorf("allow-get: %v", protojson.Format(ag))
	}
	dp := byName["shop/deny-post"]
	if len(dp.Groups) != 1 || len(dp.Groups[0].Rules) != 2 ||
		len(dp.Groups[0].Rules[1].Matches[0].SourceIps) != 1 || !proto.Equal(dp.Groups[0].Rules[0].Matches[0], &security.Match{}) {
		t.Errorf("deny-post: %v", protojson.Format(dp))
	}
	joined := strings.Join(res.Conflicts, "\n")
	for _, want := range []string{
		"AuthorizationPolicy shop/allow-get: ztunnel does not support HTTP attributes (found: methods). ",
		"AuthorizationPolicy shop/deny-post: ztunnel does not support HTTP attributes (found: methods). ",
		// One rule's clauses are ANDed: the empty (HTTP) one never matches,
		// so the rule never fires (istiod's hasEffectiveRules).
		"this DENY policy has no enforceable rules at ztunnel and will have no effect",
		"AuthorizationPolicy shop/deny-mixed: ztunnel does not support HTTP attributes (found: paths). ",
		"DENY policy with HTTP attributes is enforced without the HTTP rules",
		"AuthorizationPolicy shop/audit: ztunnel does not support the AUDIT action",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
}

// TestWDSPods: in kube mode a Pod with an IP is a workload (istiod's
// podWorkloadBuilder), backing the services whose EndpointSlices name it,
// its locality its Node's; a Pod without an IP is none. The workload API
// is built once per Generator and shared by every ztunnel, and is the
// same when built again.
func TestWDSPods(t *testing.T) {
	pc := wdsPush(t, "testdata/kube.yaml", &meshv1alpha1.MeshConfig{}, `apiVersion: v1
kind: Pod
metadata: {name: reviews-4, namespace: shop, labels: {app: reviews, version: v4}}
spec:
  containers: [{name: app, image: reviews}]
status:
  phase: Running
  podIP: 10.1.0.9
  conditions: [{type: Ready, status: "False"}]`)
	gen := xdsgen.NewGenerator(pc)
	a, err := gen.Generate(ztunnelProxy())
	if err != nil {
		t.Fatal(err)
	}
	other := ztunnelProxy()
	other.Name, other.IPs = "ztunnel-def", []string{"10.0.0.101"}
	other.ID = other.NodeID()
	b, err := gen.Generate(other)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Addresses) == 0 || len(a.Addresses) != len(b.Addresses) {
		t.Fatalf("%d and %d addresses", len(a.Addresses), len(b.Addresses))
	}
	for i := range a.Addresses {
		if a.Addresses[i] != b.Addresses[i] {
			t.Fatalf("address %d: two ztunnels of one push got two messages, not one shared", i)
		}
	}
	again, err := xdsgen.Generate(pc, ztunnelProxy())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Addresses) != len(a.Addresses) {
		t.Fatalf("%d addresses, then %d", len(a.Addresses), len(again.Addresses))
	}
	var pods []*workloadapi.Workload
	for i := range a.Addresses {
		if !proto.Equal(a.Addresses[i], again.Addresses[i]) {
			t.Errorf("address %d differs between two builds", i)
		}
		if w := a.Addresses[i].GetWorkload(); strings.HasPrefix(w.GetUid(), "Kubernetes//Pod/") {
			pods = append(pods, w)
		}
	}
	var r1, r4 *workloadapi.Workload
	for _, w := range pods {
		if w.GetUid() == "Kubernetes//Pod/shop/reviews-4" {
			r4 = w
		}
		if w.GetUid() == "Kubernetes//Pod/shop/reviews-2" {
			t.Error("a Pod without an IP is a workload")
		}
		if w.GetUid() == "Kubernetes//Pod/shop/reviews-1" {
			r1 = w
		}
	}
	want := &workloadapi.Workload{Uid: "Kubernetes//Pod/shop/reviews-1", Name: "reviews-1", Namespace: "shop",
		Addresses: [][]byte{{10, 1, 0, 1}}, ServiceAccount: "reviews", Node: "node-a", ClusterId: "Kubernetes",
		// No Ready condition: istiod's IsPodReady is false.
		Status: workloadapi.WorkloadStatus_UNHEALTHY, WorkloadType: workloadapi.WorkloadType_POD, WorkloadName: "reviews-1",
		CanonicalName: "reviews", CanonicalRevision: "v1",
		Locality: &workloadapi.Locality{Region: "eu", Zone: "eu-1", Subzone: "rack7"},
		Services: map[string]*workloadapi.PortList{"shop/reviews.shop.svc.cluster.local": {Ports: []*workloadapi.Port{
			{ServicePort: 80, TargetPort: 9080}, {ServicePort: 9000, TargetPort: 9901}}}},
	}
	if !proto.Equal(r1, want) {
		t.Errorf("reviews-1:\n got %v\nwant %v", protojson.Format(r1), protojson.Format(want))
	}
	// Not ready and in no EndpointSlice: still a workload of the Service
	// selecting it (UNHEALTHY), without the named port it lacks.
	wantPorts := map[string]*workloadapi.PortList{"shop/reviews.shop.svc.cluster.local": {Ports: []*workloadapi.Port{
		{ServicePort: 9000, TargetPort: 9901}}}}
	if r4.GetStatus() != workloadapi.WorkloadStatus_UNHEALTHY || !proto.Equal(&workloadapi.Workload{Services: r4.GetServices()},
		&workloadapi.Workload{Services: wantPorts}) {
		t.Errorf("reviews-4: %v", protojson.Format(r4))
	}
}

// TestWDSPeerAuthentication: PeerAuthentications as istiod converts them
// for ztunnel: the static STRICT policy, named by a workload whose
// effective mode is STRICT (the mesh's here); a workload policy with a
// PERMISSIVE port becomes a DENY of peers without identity on every
// other port, merged with the mesh's STRICT, and replaces the static one
// on its workloads.
func TestWDSPeerAuthentication(t *testing.T) {
	pc := wdsPush(t, "testdata/wds.yaml", &meshv1alpha1.MeshConfig{}, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}`, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db-ports, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  portLevelMtls: {5433: {mode: PERMISSIVE}}`)
	res, err := xdsgen.Generate(pc, ztunnelProxy())
	if err != nil {
		t.Fatal(err)
	}
	auth := map[string]*security.Authorization{}
	for _, a := range res.Authorizations {
		auth[xdsgen.AuthorizationName(a)] = a
	}
	presence := &security.StringMatch{MatchType: &security.StringMatch_Presence{Presence: &emptypb.Empty{}}}
	static := &security.Authorization{Name: "istio_converted_static_strict", Namespace: "istio-system",
		Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_DENY, Groups: []*security.Group{{Rules: []*security.Rules{
			{Matches: []*security.Match{{NotPrincipals: []*security.StringMatch{presence}}}}}}}}
	if got := auth["istio-system/istio_converted_static_strict"]; !proto.Equal(got, static) {
		t.Errorf("static strict: %v", got)
	}
	conv := &security.Authorization{Name: "converted_peer_authentication_db-ports", Namespace: "shop",
		Scope: security.Scope_WORKLOAD_SELECTOR, Action: security.Action_DENY, Groups: []*security.Group{{Rules: []*security.Rules{
			{Matches: []*security.Match{{NotDestinationPorts: []uint32{5433}}}},
			{Matches: []*security.Match{{NotPrincipals: []*security.StringMatch{presence}}}}}}}}
	if got := auth["shop/converted_peer_authentication_db-ports"]; !proto.Equal(got, conv) {
		t.Errorf("converted:\n got %v\nwant %v", got, conv)
	}
	policies := map[string][]string{}
	for _, a := range res.Addresses {
		if w := a.GetWorkload(); w != nil {
			policies[w.GetName()] = w.GetAuthorizationPolicies()
		}
	}
	if got, want := policies["db-1"], []string{"shop/deny-mixed", "shop/deny-post", "shop/converted_peer_authentication_db-ports"}; !slices.Equal(got, want) {
		t.Errorf("db-1 policies %q, want %q", got, want)
	}
	if got, want := policies["web-1"], []string{"shop/allow-get", "shop/allow-web", "istio-system/istio_converted_static_strict"}; !slices.Equal(got, want) {
		t.Errorf("web-1 policies %q, want %q", got, want)
	}
}
