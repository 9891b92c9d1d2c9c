package xdsgen_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// sharingConfig: reviews in namespace a with a DestinationRule exported
// to a alone (subsets, outlier detection, locality failover); ratings in
// b with endpoints in two localities and a failoverPriority rule; a
// VirtualService for ratings with a sourceLabels match; a DNS
// ServiceEntry whose cluster carries its endpoints (locality failover by
// outlier detection).
const sharingConfig = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: a}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: a}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, locality: us-east/zone-a, ports: {http: 9080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: a}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}, locality: us-west/zone-a, ports: {http: 9080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: a}
spec:
  host: reviews.a.svc.cluster.local
  exportTo: ["."]
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
    loadBalancer:
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}]
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: b}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: b}
spec: {address: 10.1.0.1, labels: {app: ratings, tier: gold}, locality: us-east/zone-a, ports: {http: 9080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-2, namespace: b}
spec: {address: 10.1.0.2, labels: {app: ratings, tier: silver}, locality: us-east/zone-a, ports: {http: 9080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: b}
spec:
  host: ratings.b.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
    loadBalancer:
      localityLbSetting:
        enabled: true
        failoverPriority: [tier]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: b}
spec:
  hosts: [ratings.b.svc.cluster.local]
  http:
  - match: [{sourceLabels: {canary: "true"}}]
    route: [{destination: {host: ratings.b.svc.cluster.local}}]
    timeout: 3s
  - route: [{destination: {host: ratings.b.svc.cluster.local}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: b}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints:
  - {address: east.example.com, locality: us-east/zone-a}
  - {address: west.example.com, locality: us-west/zone-a}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: b}
spec:
  host: api.example.com
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
`

func sharingPush(t testing.TB, yaml string) *model.PushContext {
	t.Helper()
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "sharing.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	return model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
}

func proxyIn(name, ns, locality string, labels map[string]string) *model.Proxy {
	p := sidecarFor(ns, labels)
	p.Name, p.Locality = name, locality
	p.ID = p.NodeID()
	return &p
}

func genFor(t *testing.T, gen *xdsgen.Generator, p *model.Proxy) *xdsgen.Resources {
	t.Helper()
	res, err := gen.Generate(p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func findCluster(res *xdsgen.Resources, name string) *cluster.Cluster {
	for _, c := range res.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func findCLA(res *xdsgen.Resources, name string) *endpoint.ClusterLoadAssignment {
	for _, e := range res.Endpoints {
		if e.ClusterName == name {
			return e
		}
	}
	return nil
}

func findRoute(res *xdsgen.Resources, name string) *route.RouteConfiguration {
	for _, r := range res.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

const (
	reviewsV1 = "outbound|9080|v1|reviews.a.svc.cluster.local"
	ratings   = "outbound|9080||ratings.b.svc.cluster.local"
	extDNS    = "outbound|443||api.example.com"
)

// credentialConfig: a DestinationRule in the root namespace whose tls
// names a Secret that namespace a has and b does not (Istio looks in the
// proxy's namespace first, then the rule's).
const credentialConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: istio-system}
spec: {hosts: [secure.example.com], location: MESH_EXTERNAL, resolution: STATIC, ports: [{number: 443, name: tls, protocol: TLS}], endpoints: [{address: 10.9.0.1}]}
---
apiVersion: v1
kind: Secret
metadata: {name: client-credential, namespace: a}
type: kubernetes.io/tls
stringData: {tls.crt: A-CERT, tls.key: A-KEY, ca.crt: A-CA}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: istio-system}
spec:
  host: secure.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: client-credential}
`

// TestGeneratorCredentialByNamespace: a rule naming a credentialName
// gives each proxy namespace its own cluster (its own Secret, or the
// conflict of having none).
func TestGeneratorCredentialByNamespace(t *testing.T) {
	pc := sharingPush(t, credentialConfig)
	gen := xdsgen.NewGenerator(pc)
	a1 := genFor(t, gen, proxyIn("a1", "a", "", nil))
	a2 := genFor(t, gen, proxyIn("a2", "a", "", map[string]string{"app": "y"}))
	b := genFor(t, gen, proxyIn("b1", "b", "", nil))
	const name = "outbound|443||secure.example.com"
	if findCluster(a1, name) != findCluster(a2, name) {
		t.Error("one namespace, one credential: clusters not shared")
	}
	if findCluster(a1, name).GetTransportSocket() == nil {
		t.Error("namespace a has the Secret: want a transport socket")
	}
	if findCluster(b, name).GetTransportSocket() != nil || len(b.Conflicts) == 0 || len(a1.Conflicts) != 0 {
		t.Errorf("namespace b has no Secret: want plaintext and a conflict (a: %q, b: %q)", a1.Conflicts, b.Conflicts)
	}
}

// TestGeneratorSharesByKey: proxies whose keys agree get the same
// pointers; proxies whose keys differ get their own, different content.
func TestGeneratorSharesByKey(t *testing.T) {
	pc := sharingPush(t, sharingConfig)
	gen := xdsgen.NewGenerator(pc)
	east := "us-east/zone-a"
	a1 := genFor(t, gen, proxyIn("a1", "a", east, map[string]string{"app": "x"}))
	a2 := genFor(t, gen, proxyIn("a2", "a", east, map[string]string{"app": "y", "tier": "gold"}))
	b1 := genFor(t, gen, proxyIn("b1", "b", east, map[string]string{"app": "x"}))
	aWest := genFor(t, gen, proxyIn("a3", "a", "us-west/zone-a", map[string]string{"app": "x"}))
	aCanary := genFor(t, gen, proxyIn("a4", "a", east, map[string]string{"app": "x", "canary": "true"}))
	aGold := genFor(t, gen, proxyIn("a5", "a", east, map[string]string{"tier": "gold"}))

	same := func(what string, x, y any) {
		t.Helper()
		if x == nil || y == nil || x != y {
			t.Errorf("%s: not the same pointer (%p, %p)", what, x, y)
		}
	}
	differ := func(what string, x, y proto.Message) {
		t.Helper()
		if proto.Equal(x, y) {
			t.Errorf("%s: same content, want different", what)
		}
	}
	// Same namespace, locality and sourceLabels bits: everything shared.
	same("cluster "+reviewsV1, findCluster(a1, reviewsV1), findCluster(a2, reviewsV1))
	same("endpoints "+reviewsV1, findCLA(a1, reviewsV1), findCLA(a2, reviewsV1))
	same("outbound routes", findRoute(a1, xdsgen.OutboundRouteName), findRoute(a2, xdsgen.OutboundRouteName))
	// Namespaces see other short names (ratings from b).
	differ("outbound routes a vs b", findRoute(a1, xdsgen.OutboundRouteName), findRoute(b1, xdsgen.OutboundRouteName))
	// The DR is exported to a alone: b has no subset clusters and a plain
	// reviews cluster.
	if findCluster(b1, reviewsV1) != nil {
		t.Errorf("namespace b sees %s; its DestinationRule is exported to a only", reviewsV1)
	}
	plain := "outbound|9080||reviews.a.svc.cluster.local"
	differ("cluster "+plain+" a vs b", findCluster(a1, plain), findCluster(b1, plain))
	// The ratings cluster has the same DR for both namespaces: shared.
	same("cluster "+ratings+" across namespaces", findCluster(a1, ratings), findCluster(b1, ratings))
	// Locality failover: another locality, other priorities.
	differ("endpoints "+reviewsV1+" east vs west", findCLA(a1, plain), findCLA(aWest, plain))
	same("cluster "+plain+" east vs west (EDS)", findCluster(a1, plain), findCluster(aWest, plain))
	// A DNS cluster carries its endpoints: per locality.
	differ("cluster "+extDNS+" east vs west", findCluster(a1, extDNS), findCluster(aWest, extDNS))
	// sourceLabels: the canary proxy's table differs, the others' do not.
	differ("outbound routes canary", findRoute(a1, xdsgen.OutboundRouteName), findRoute(aCanary, xdsgen.OutboundRouteName))
	// failoverPriority on tier: a gold proxy sees other priorities.
	differ("endpoints "+ratings+" tier gold vs none", findCLA(a1, ratings), findCLA(aGold, ratings))
	same("endpoints "+ratings+" tier gold twice", findCLA(a2, ratings), findCLA(aGold, ratings))
}

// TestGeneratorNoSourceLabels: without a sourceLabels match anywhere,
// labels do not split the route table.
func TestGeneratorNoSourceLabels(t *testing.T) {
	pc := sharingPush(t, sharingConfig[:len(sharingConfig)-len(sharingConfig[indexOf(sharingConfig, "apiVersion: networking.istio.io/v1\nkind: VirtualService"):])])
	gen := xdsgen.NewGenerator(pc)
	x := genFor(t, gen, proxyIn("x", "a", "", map[string]string{"app": "x", "canary": "true"}))
	y := genFor(t, gen, proxyIn("y", "a", "", map[string]string{"app": "y"}))
	if findRoute(x, xdsgen.OutboundRouteName) != findRoute(y, xdsgen.OutboundRouteName) {
		t.Error("outbound route tables differ by labels with no sourceLabels in the push")
	}
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	panic("no " + sub)
}

// TestGeneratorEndpoints: Endpoints gives Generate's pointers and skips
// names the proxy does not have.
func TestGeneratorEndpoints(t *testing.T) {
	pc := sharingPush(t, sharingConfig)
	gen := xdsgen.NewGenerator(pc)
	p := proxyIn("a1", "a", "us-east/zone-a", map[string]string{"app": "x"})
	res := genFor(t, gen, p)
	got, err := gen.Endpoints(p, []string{reviewsV1, "outbound|9080|v3|reviews.a.svc.cluster.local", extDNS, "nonsense", ratings})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != findCLA(res, reviewsV1) || got[1] != findCLA(res, ratings) {
		t.Errorf("Endpoints = %v, want the pointers Generate returned for %s and %s", got, reviewsV1, ratings)
	}
	b := proxyIn("b1", "b", "us-east/zone-a", nil)
	if got, _ := gen.Endpoints(b, []string{reviewsV1}); len(got) != 0 {
		t.Errorf("namespace b got %s; its DestinationRule is not exported there", reviewsV1)
	}
}

// TestSharedGenerationMatchesFresh: for every golden config, a Generator
// shared by proxies that differ in namespace, labels and locality gives
// each exactly what a fresh generation gives it, in whatever order the
// proxies come, concurrently.
func TestSharedGenerationMatchesFresh(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var proxies []*model.Proxy
	for i, ns := range []string{"default", "other", "istio-system"} {
		for j, labels := range []map[string]string{nil, {"app": "client"}, {"app": "client", "team": "beta", "tier": "gold"}, {"team": "alpha", "version": "v2"}} {
			for k, loc := range []string{"", "us-east/zone-a/rack-1", "us-west/zone-a"} {
				p := sidecar(fmt.Sprintf("p%d%d%d", i, j, k), labels)
				p.Namespace, p.Locality = ns, loc
				p.ID = p.NodeID()
				proxies = append(proxies, &p)
			}
		}
	}
	for _, r := range []model.Proxy{
		{Type: model.Router, Name: "ingress", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000},
		{Type: model.Router, Name: "web-gateway", Namespace: "infra", Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000},
	} {
		r.ID = r.NodeID()
		proxies = append(proxies, &r)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			pc := sharingPush(t, string(data))
			gen := xdsgen.NewGenerator(pc)
			var wg sync.WaitGroup
			shared := make([]*xdsgen.Resources, len(proxies))
			for i, p := range proxies {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := gen.Generate(p)
					if err != nil {
						t.Error(err)
						return
					}
					shared[i] = res
				}()
			}
			wg.Wait()
			// Compared once every proxy is done: a generation that edited
			// a shared resource after handing it out shows here too.
			for i, p := range proxies {
				fresh, err := xdsgen.Generate(pc, p)
				if err != nil {
					t.Fatal(err)
				}
				if shared[i] == nil {
					continue
				}
				if d := resourcesDiff(shared[i], fresh); d != "" {
					t.Errorf("proxy %s: shared generation differs from fresh: %s", p.ID, d)
				}
			}
		})
	}
}

// resourcesDiff names the first resource that differs.
func resourcesDiff(x, y *xdsgen.Resources) string {
	type list struct {
		kind string
		x, y []proto.Message
	}
	msgs := func(n int, at func(int) proto.Message) []proto.Message {
		out := make([]proto.Message, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	for _, l := range []list{
		{"listener", msgs(len(x.Listeners), func(i int) proto.Message { return x.Listeners[i] }), msgs(len(y.Listeners), func(i int) proto.Message { return y.Listeners[i] })},
		{"route", msgs(len(x.Routes), func(i int) proto.Message { return x.Routes[i] }), msgs(len(y.Routes), func(i int) proto.Message { return y.Routes[i] })},
		{"cluster", msgs(len(x.Clusters), func(i int) proto.Message { return x.Clusters[i] }), msgs(len(y.Clusters), func(i int) proto.Message { return y.Clusters[i] })},
		{"endpoints", msgs(len(x.Endpoints), func(i int) proto.Message { return x.Endpoints[i] }), msgs(len(y.Endpoints), func(i int) proto.Message { return y.Endpoints[i] })},
	} {
		if len(l.x) != len(l.y) {
			return fmt.Sprintf("%d %ss, want %d", len(l.x), l.kind, len(l.y))
		}
		for i := range l.x {
			if !proto.Equal(l.x[i], l.y[i]) {
				return fmt.Sprintf("%s #%d differs", l.kind, i)
			}
		}
	}
	if fmt.Sprint(x.Conflicts) != fmt.Sprint(y.Conflicts) {
		return fmt.Sprintf("conflicts %q, want %q", x.Conflicts, y.Conflicts)
	}
	return ""
}
