package model

import (
	"slices"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/registry"
)

func TestSidecarSelection(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: "istio-system"}, Resources: decode(t, `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: finance}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec: {egress: [{hosts: ["./*"]}], outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: billing, namespace: shop}
spec:
  workloadSelector: {labels: {app: billing}}
  egress: [{hosts: ["finance/ledger.finance.svc.cluster.local"]}]
`)})
	reviews := pc.ServicesForHost("reviews.shop.svc.cluster.local")[0]
	ledger := pc.ServicesForHost("ledger.finance.svc.cluster.local")[0]
	cases := []struct {
		name                  string
		proxy                 Proxy
		want                  string
		seesReviews, seesLedg bool
		registryOnly          bool
	}{
		{"workload selector wins", Proxy{Namespace: "shop", Labels: map[string]string{"app": "billing"}}, "billing", false, true, false},
		{"namespace-wide next", Proxy{Namespace: "shop", Labels: map[string]string{"app": "web"}}, "default", true, false, true},
		// "." in the root namespace's Sidecar is the workload's namespace.
		{"root namespace last", Proxy{Namespace: "finance"}, "default", false, true, false},
	}
	for _, c := range cases {
		sc := pc.SidecarScope(&c.proxy)
		got := ""
		if sc.Resource != nil {
			got = sc.Resource.Name
		}
		if got != c.want || sc.ServiceVisible(reviews) != c.seesReviews || sc.ServiceVisible(ledger) != c.seesLedg {
			t.Errorf("%s: Sidecar %q sees reviews %v ledger %v; want %q %v %v", c.name, got,
				sc.ServiceVisible(reviews), sc.ServiceVisible(ledger), c.want, c.seesReviews, c.seesLedg)
		}
		p := sc.OutboundTrafficPolicy(pc.Mesh)
		ro := p != nil && p.Mode == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY
		if ro != c.registryOnly {
			t.Errorf("%s: REGISTRY_ONLY %v, want %v", c.name, ro, c.registryOnly)
		}
	}
}

func TestNoSidecarSeesEverything(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: finance}
spec: {ports: [{name: http, port: 80}]}
`)})
	sc := pc.SidecarScope(&Proxy{Namespace: "shop"})
	if sc.Resource != nil || !sc.ServiceVisible(pc.Services()[0]) {
		t.Error("without a Sidecar every exported service is visible")
	}
}

// TestEgressListenerPorts: a listener on a port imports its hosts on that
// port only; the catch-all serves every other port; without a catch-all a
// port nothing names admits nothing (Istio's GetEgressListenerForRDS).
func TestEgressListenerPorts(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 80}, {name: http-alt, port: 9080}, {name: tcp, port: 7000}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ports-only, namespace: shop}
spec:
  workloadSelector: {labels: {app: a}}
  egress:
  - {port: {number: 9080, protocol: TCP, name: tcp}, hosts: ["./reviews.shop.svc.cluster.local"]}
  - {port: {number: 80, protocol: HTTP, name: http}, hosts: ["./ratings.shop.svc.cluster.local"]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: with-catch-all, namespace: shop}
spec:
  workloadSelector: {labels: {app: b}}
  egress:
  - {port: {number: 80, name: http}, hosts: ["./ratings.shop.svc.cluster.local"]}
  - {hosts: ["./*"]}
`)})
	reviews := pc.ServicesForHost("reviews.shop.svc.cluster.local")[0]
	ratings := pc.ServicesForHost("ratings.shop.svc.cluster.local")[0]
	a := pc.SidecarScope(&Proxy{Namespace: "shop", Labels: map[string]string{"app": "a"}})
	b := pc.SidecarScope(&Proxy{Namespace: "shop", Labels: map[string]string{"app": "b"}})
	cases := []struct {
		name  string
		scope *SidecarScope
		svc   *registry.Service
		port  uint32
		want  bool
	}{
		{"listener port imports its host", a, reviews, 9080, true},
		{"other port of the same host is not covered", a, reviews, 80, false},
		{"port no listener names", a, reviews, 7000, false},
		{"listener imports only its hosts", a, ratings, 9080, false},
		{"second listener", a, ratings, 80, true},
		{"port listener wins over the catch-all", b, reviews, 80, false},
		{"catch-all serves other ports", b, reviews, 9080, true},
		{"catch-all serves other ports (tcp)", b, reviews, 7000, true},
	}
	for _, tc := range cases {
		if got := tc.scope.ServicePortVisible(tc.svc, tc.port); got != tc.want {
			t.Errorf("%s: ServicePortVisible(%s, %d) = %v, want %v", tc.name, tc.svc.Hostname, tc.port, got, tc.want)
		}
	}
	if !a.ServiceVisible(reviews) || !a.ServiceVisible(ratings) {
		t.Errorf("services imported on some port must be visible (for their clusters)")
	}
	if p, ok := a.PortProtocol(9080); !ok || p != registry.ProtocolTCP {
		t.Errorf("PortProtocol(9080) = %v %v, want TCP", p, ok)
	}
	if _, ok := b.PortProtocol(80); ok {
		t.Errorf("a listener port without protocol must not override the service port's")
	}
	if _, ok := b.PortProtocol(9080); ok {
		t.Errorf("the catch-all has no protocol of its own")
	}
}

// TestInboundMetadata: the inbound list travels in node metadata, and a
// node with only the single-valued keys of older proxies still reads.
func TestInboundMetadata(t *testing.T) {
	p := &Proxy{Type: Sidecar, Name: "db-0", Namespace: "default", IPs: []string{"127.0.0.1"},
		Inbound: []InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "unix:///run/db.sock"}}}
	n := p.Node()
	got, err := ProxyFromNode(n)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Inbound, p.Inbound) {
		t.Errorf("inbound %v, want %v", got.Inbound, p.Inbound)
	}
	delete(n.Metadata.Fields, MetaInbound)
	got, err = ProxyFromNode(n)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Inbound[:1]; !slices.Equal(got.Inbound, want) {
		t.Errorf("from the old keys: inbound %v, want %v", got.Inbound, want)
	}
	got, _ = ProxyFromNode((&Proxy{Type: Sidecar, Name: "c", Namespace: "default"}).Node())
	if got.Inbound != nil {
		t.Errorf("a client has no inbound ports, got %v", got.Inbound)
	}
}
