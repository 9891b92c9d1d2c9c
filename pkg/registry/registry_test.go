package registry

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// build decodes and validates yaml as the control plane does, then builds
// the registry.
func build(t *testing.T, yaml string) *Registry {
	t.Helper()
	res := config.Decode([]byte(yaml), config.DecodeOptions{File: "registry.yaml"})
	if len(res.Errors) > 0 {
		t.Fatalf("decode: %v", res.Errors)
	}
	for _, r := range res.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return Build(res.Resources, BuildOptions{})
}

func service(t *testing.T, r *Registry, host, ns string) *Service {
	t.Helper()
	for _, s := range r.ServicesForHost(host) {
		if s.Namespace == ns {
			return s
		}
	}
	t.Fatalf("no service %s in %s; have %v", host, ns, hosts(r))
	return nil
}

func hosts(r *Registry) []string {
	var out []string
	for _, s := range r.Services() {
		out = append(out, s.Hostname+"@"+s.Namespace)
	}
	return out
}

// endpoints lists a port's endpoints as address:port(workload).
func endpoints(r *Registry, s *Service, port uint32) string {
	var out []string
	for _, e := range r.Endpoints(s, port) {
		out = append(out, fmt.Sprintf("%s:%d(%s)", e.Address, e.Port, e.Workload))
	}
	return strings.Join(out, " ")
}

const kubeServices = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.0.0.7
  selector: {app: reviews}
  ports:
  - {name: http-web, port: 9080, targetPort: 8080}
  - {name: metrics, port: 9090, appProtocol: tcp}
  - {name: grpc-api, port: 9443}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop, annotations: {networking.istio.io/exportTo: "., ops"}}
spec:
  clusterIP: None
  ports: [{name: tcp, port: 5432}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec:
  address: 10.1.0.2
  labels: {app: reviews, version: v2}
  ports: {http-web: 18080}
  serviceAccount: reviews
  locality: us/east/a
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec:
  address: 10.1.0.1
  labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings, namespace: shop}
spec: {address: 10.1.0.9, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-elsewhere, namespace: other}
spec: {address: 10.2.0.1, labels: {app: reviews}}
`

// A Kubernetes Service selects the WorkloadEntries of its namespace whose
// labels (metadata and spec merged) match, on every port; the workload's
// named port wins over targetPort, which wins over the service port.
func TestKubernetesService(t *testing.T) {
	r := build(t, kubeServices)
	s := service(t, r, "reviews.shop.svc.cluster.local", "shop")
	if s.Resolution != ResolutionStatic || len(s.Addresses) != 1 || s.Addresses[0] != "10.0.0.7" || !s.VisibleTo("anywhere") {
		t.Errorf("service: %+v", s)
	}
	if s.Source != (config.Key{Kind: config.KindService, Namespace: "shop", Name: "reviews"}) {
		t.Errorf("source %v", s.Source)
	}
	wantProtocols := map[uint32]Protocol{9080: ProtocolHTTP, 9090: ProtocolTCP, 9443: ProtocolGRPC}
	for n, want := range wantProtocols {
		if p, ok := s.Port(n); !ok || p.Protocol != want {
			t.Errorf("port %d: %+v, want %s", n, p, want)
		}
	}
	if got, want := endpoints(r, s, 9080), "10.1.0.1:8080(shop/reviews-v1) 10.1.0.2:18080(shop/reviews-v2)"; got != want {
		t.Errorf("port 9080 endpoints %s, want %s", got, want)
	}
	if got, want := endpoints(r, s, 9090), "10.1.0.1:9090(shop/reviews-v1) 10.1.0.2:9090(shop/reviews-v2)"; got != want {
		t.Errorf("port 9090 endpoints %s, want %s", got, want)
	}
	e := r.Endpoints(s, 9080)[1]
	if e.ServiceAccount != "reviews" || e.Locality != "us/east/a" || e.Labels["app"] != "reviews" || e.Labels["version"] != "v2" {
		t.Errorf("endpoint: %+v", e)
	}
	if v1 := r.Endpoints(s, 9080)[0]; v1.Labels["app"] != "reviews" || v1.Labels["version"] != "v1" {
		t.Errorf("metadata and spec labels not merged: %v", v1.Labels)
	}

	db := service(t, r, "db.shop.svc.cluster.local", "shop")
	if db.Resolution != ResolutionNone || len(db.Addresses) != 0 || len(r.Endpoints(db, 5432)) != 0 {
		t.Errorf("headless service without selector: %+v, %d endpoints", db, len(r.Endpoints(db, 5432)))
	}
	if !db.VisibleTo("shop") || !db.VisibleTo("ops") || db.VisibleTo("web") {
		t.Errorf("exportTo %v", db.ExportTo)
	}
}

const serviceEntries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: egress}
spec:
  hosts: [api.example.com, www.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  exportTo: ["."]
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: egress}
spec:
  hosts: ["*.example.org"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [vms.internal]
  addresses: [240.0.0.1]
  resolution: STATIC
  ports: [{number: 80, name: http, targetPort: 8000}]
  endpoints:
  - {address: 10.3.0.2, ports: {http: 9000}, labels: {version: v2}}
  - {address: 10.3.0.1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm-pool, namespace: shop}
spec:
  hosts: [pool.internal]
  resolution: STATIC
  ports: [{number: 80, name: http, targetPort: 8000}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-a, namespace: shop}
spec: {address: 10.3.0.3, labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: ops}
spec:
  hosts: [vms.internal]
  resolution: NONE
  ports: [{number: 80, name: http}]
`

// A ServiceEntry makes one service per host, with its endpoints, those
// its workloadSelector picks, or for DNS without endpoints its own name.
func TestServiceEntries(t *testing.T) {
	r := build(t, serviceEntries)
	for _, h := range []string{"api.example.com", "www.example.com"} {
		s := service(t, r, h, "egress")
		if s.Resolution != ResolutionDNS || !s.MeshExternal || s.VisibleTo("shop") || !s.VisibleTo("egress") {
			t.Errorf("%s: %+v", h, s)
		}
		if got, want := endpoints(r, s, 443), h+":443(egress/external)"; got != want {
			t.Errorf("%s endpoints %s, want %s (DNS resolves its own name)", h, got, want)
		}
	}
	wild := service(t, r, "*.example.org", "egress")
	if n := len(r.Endpoints(wild, 443)); n != 0 || wild.Resolution != ResolutionNone {
		t.Errorf("a wildcard host of resolution NONE has %d endpoints and resolution %s, want none and NONE", n, wild.Resolution)
	}
	if p, _ := wild.Port(443); p.Protocol != ProtocolHTTPS || p.Protocol.IsHTTP() {
		t.Errorf("port %+v", p)
	}

	vms := service(t, r, "vms.internal", "shop")
	if vms.Resolution != ResolutionStatic || vms.Addresses[0] != "240.0.0.1" {
		t.Errorf("vms: %+v", vms)
	}
	want := "10.3.0.1:8000(shop/vms/endpoints[1]) 10.3.0.2:9000(shop/vms/endpoints[0])"
	if got := endpoints(r, vms, 80); got != want {
		t.Errorf("vms endpoints %s, want %s", got, want)
	}
	if e := r.Endpoints(vms, 80)[1]; e.Labels["version"] != "v2" {
		t.Errorf("endpoint labels %v", e.Labels)
	}
	pool := service(t, r, "pool.internal", "shop")
	if got, want := endpoints(r, pool, 80), "10.3.0.3:8000(shop/vm-a)"; got != want {
		t.Errorf("workloadSelector endpoints %s, want %s", got, want)
	}
	// One host in two namespaces: two services, in namespace order.
	if got := r.ServicesForHost("vms.internal"); len(got) != 2 || got[0].Namespace != "ops" || got[1].Namespace != "shop" ||
		got[0].Resolution != ResolutionNone {
		t.Errorf("services for vms.internal: %v", hosts(r))
	}
	var all []string
	for _, s := range r.Services() {
		all = append(all, s.Hostname+"@"+s.Namespace)
	}
	if got, want := strings.Join(all, " "), "*.example.org@egress api.example.com@egress pool.internal@shop vms.internal@ops vms.internal@shop www.example.com@egress"; got != want {
		t.Errorf("services in order: %s, want %s", got, want)
	}
}

func TestProtocolFromPort(t *testing.T) {
	for _, c := range []struct {
		explicit, name string
		want           Protocol
	}{
		{"", "http", ProtocolHTTP},
		{"", "http-web", ProtocolHTTP},
		{"", "HTTP2-x", ProtocolHTTP2},
		{"", "grpc-web", ProtocolGRPC},
		{"", "https", ProtocolHTTPS},
		{"", "tls-db", ProtocolTLS},
		{"", "mongo", ProtocolTCP},
		{"", "web", ProtocolUnknown},
		{"", "", ProtocolUnknown},
		{"kubernetes.io/h2c", "tcp", ProtocolHTTP2},
		{"TCP", "http", ProtocolTCP},
		{"nonsense", "http", ProtocolHTTP},
	} {
		if got := ProtocolFromPort(c.explicit, c.name); got != c.want {
			t.Errorf("ProtocolFromPort(%q, %q) = %s, want %s", c.explicit, c.name, got, c.want)
		}
	}
	if !ProtocolUnknown.IsHTTP() || ProtocolTCP.IsHTTP() || ProtocolTLS.IsHTTP() {
		t.Error("IsHTTP")
	}
}

func TestLabelsMatch(t *testing.T) {
	labels := map[string]string{"app": "reviews", "version": "v1"}
	for _, c := range []struct {
		selector map[string]string
		want     bool
	}{
		{nil, true},
		{map[string]string{"app": "reviews"}, true},
		{map[string]string{"app": "reviews", "version": "v1"}, true},
		{map[string]string{"app": "reviews", "version": "v2"}, false},
		{map[string]string{"tier": ""}, false},
	} {
		if got := LabelsMatch(c.selector, labels); got != c.want {
			t.Errorf("LabelsMatch(%v) = %v, want %v", c.selector, got, c.want)
		}
	}
}
