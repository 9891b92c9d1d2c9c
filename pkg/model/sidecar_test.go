package model

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
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
