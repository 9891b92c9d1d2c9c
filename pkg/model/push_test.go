package model

import (
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

func decode(t *testing.T, yaml string) []*config.Resource {
	t.Helper()
	res := config.Decode([]byte(yaml), config.DecodeOptions{File: "t.yaml"})
	if len(res.Errors) > 0 {
		t.Fatal(res.Errors)
	}
	return res.Resources
}

func TestRegistryFromServiceAndWorkloadEntries(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9090}
  - {name: grpc-admin, port: 7000}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r1, namespace: bookinfo}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 20001}, locality: us/east/a, weight: 5, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r2, namespace: bookinfo, labels: {app: reviews}}
spec: {address: 10.0.0.2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-ns, namespace: default}
spec: {address: 10.0.0.3, labels: {app: reviews}}
`)})
	svcs := pc.ServicesForHost("reviews.bookinfo.svc.cluster.local")
	if len(svcs) != 1 {
		t.Fatalf("services: %v", svcs)
	}
	svc := svcs[0]
	if p, _ := svc.Port(7000); p.Protocol != "GRPC" {
		t.Errorf("grpc-admin port protocol %q, want GRPC (from the name prefix)", p.Protocol)
	}
	eps := pc.Endpoints(svc, 9080)
	if len(eps) != 2 {
		t.Fatalf("want 2 endpoints (WorkloadEntries in other namespaces never match), got %d", len(eps))
	}
	// r1 names its own port for "http"; r2 falls back to the targetPort.
	if eps[0].Address != "10.0.0.1" || eps[0].Port != 20001 || eps[0].Locality != "us/east/a" || eps[0].Weight != 5 || eps[0].ServiceAccount != "reviews" {
		t.Errorf("r1 endpoint: %+v", eps[0])
	}
	if eps[1].Address != "10.0.0.2" || eps[1].Port != 9090 {
		t.Errorf("r2 endpoint: %+v (metadata labels select too; targetPort applies)", eps[1])
	}
	if grpc := pc.Endpoints(svc, 7000); len(grpc) != 2 || grpc[1].Port != 7000 {
		t.Errorf("port 7000 endpoints: %+v", grpc)
	}
}

func TestServiceEntryEndpointsAndExportTo(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: team-a}
spec:
  hosts: [api.example.com, api2.example.com]
  exportTo: ["."]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: team-a}
spec:
  hosts: [vm.internal]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1, namespace: team-a}
spec: {address: 10.1.0.1, labels: {app: vm}}
`)})
	ext := pc.ServicesForHost("api2.example.com")
	if len(ext) != 1 || !ext[0].VisibleTo("team-a") || ext[0].VisibleTo("team-b") {
		t.Fatalf("exportTo '.' must limit the service to its namespace: %+v", ext)
	}
	if eps := pc.Endpoints(ext[0], 443); len(eps) != 1 || eps[0].Address != "api2.example.com" {
		t.Errorf("a DNS ServiceEntry without endpoints resolves its host: %+v", eps)
	}
	vm := pc.ServicesForHost("vm.internal")[0]
	if eps := pc.Endpoints(vm, 80); len(eps) != 1 || eps[0].Address != "10.1.0.1" {
		t.Errorf("workloadSelector endpoints: %+v", eps)
	}
}

func TestDestinationRulePrecedence(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{RootNamespace: "istio-system"}, Resources: decode(t, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: root-wild, namespace: istio-system}
spec: {host: "*.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-ns, namespace: bookinfo}
spec: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-ns-wild, namespace: frontend}
spec: {host: "*.bookinfo.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-ns-exact, namespace: frontend}
spec: {host: reviews.bookinfo.svc.cluster.local}
`)})
	host := "reviews.bookinfo.svc.cluster.local"
	for _, c := range []struct{ proxyNS, want string }{
		{"frontend", "client-ns-exact"}, // the proxy's namespace first; exact beats wildcard
		{"bookinfo", "svc-ns"},          // short host resolved in the rule's namespace
		{"elsewhere", "svc-ns"},         // then the service's namespace
	} {
		dr := pc.DestinationRule(c.proxyNS, host, "bookinfo")
		if dr == nil || dr.Name != c.want {
			t.Errorf("proxy in %s: got %v, want %s", c.proxyNS, dr, c.want)
		}
	}
	if dr := pc.DestinationRule("elsewhere", "ratings.prod.svc.cluster.local", "prod"); dr == nil || dr.Name != "root-wild" {
		t.Errorf("root namespace rule should apply last: %v", dr)
	}
}

func TestVirtualServiceGatewayBinding(t *testing.T) {
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: decode(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: ns1}
spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-only, namespace: ns1}
spec: {hosts: [b.example.com], gateways: [my-gw], http: [{route: [{destination: {host: b}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: ns1}
spec: {hosts: [c], gateways: [mesh, other/gw], exportTo: ["."], http: [{route: [{destination: {host: c}}]}]}
`)})
	names := func(vs []*VirtualService) (out []string) {
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return
	}
	// Equal creation times: Istio orders by name, then namespace.
	if got := names(pc.VirtualServicesFor(GatewayMesh, "ns1")); len(got) != 2 || got[0] != "both" || got[1] != "mesh-only" {
		t.Errorf("mesh from ns1: %v", got)
	}
	if got := names(pc.VirtualServicesFor(GatewayMesh, "ns2")); len(got) != 1 || got[0] != "mesh-only" {
		t.Errorf("mesh from ns2 (exportTo '.' hides 'both'): %v", got)
	}
	if got := names(pc.VirtualServicesFor("ns1/my-gw", "ns1")); len(got) != 1 || got[0] != "gw-only" {
		t.Errorf("ns1/my-gw: %v", got)
	}
	if pc.VirtualServicesFor(GatewayMesh, "ns2")[0].Hosts[0] != "a.ns1.svc.cluster.local" {
		t.Error("short VirtualService hosts resolve in the resource's namespace")
	}
	if ResolveGateway("gw.istio-system.svc.cluster.local", "x") != "istio-system/gw" {
		t.Error("gateway FQDN form")
	}
}

func TestOldestVirtualServiceWinsAHost(t *testing.T) {
	rs := decode(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-newer, namespace: ns1, creationTimestamp: "2026-01-02T00:00:00Z"}
spec: {hosts: [svc], http: [{route: [{destination: {host: svc, subset: new}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: z-older, namespace: ns1, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {hosts: [svc], http: [{route: [{destination: {host: svc, subset: old}}]}]}
`)
	pc := NewPushContext(PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: rs})
	if got := pc.VirtualServicesFor(GatewayMesh, "ns1"); got[0].Name != "z-older" {
		t.Errorf("the oldest VirtualService must come first, got %s", got[0].Name)
	}
}
