package model

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// changeBase is the mesh the change tests edit, one document per name.
var changeBase = map[string]string{
	"reviews": `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}`,
	"ratings": `apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}`,
	"private": `apiVersion: v1
kind: Service
metadata: {name: private, namespace: other, annotations: {networking.istio.io/exportTo: "."}}
spec: {selector: {app: private}, ports: [{name: http, port: 80}]}`,
	"backend": `apiVersion: v1
kind: Service
metadata: {name: backend, namespace: other, annotations: {networking.istio.io/exportTo: "."}}
spec: {selector: {app: backend}, ports: [{name: http, port: 80}]}`,
	"r1": `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews}, serviceAccount: reviews}`,
	"scoped-sidecar": `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec:
  egress: [{hosts: ["./*", "shop/ratings.shop.svc.cluster.local"]}]`,
	"ingress": `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]`,
	"reviews-vs": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]`,
	"gw-vs": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [istio-system/ingress]
  http: [{route: [{destination: {host: reviews}}]}]`,
	"to-backend": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-backend, namespace: other}
spec:
  hosts: [front.other.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: backend.other.svc.cluster.local}}]}]`,
	"reviews-dr": `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}`,
}

func changePush(t *testing.T, docs map[string]string, prev *PushContext) *PushContext {
	t.Helper()
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	var yaml []string
	for _, n := range names {
		yaml = append(yaml, docs[n])
	}
	resources := decode(t, strings.Join(yaml, "\n---\n"))
	config.SortResources(resources)
	opts := PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: resources}
	if prev != nil {
		prevRes := make([]*config.Resource, 0, len(prev.resources))
		for _, r := range prev.resources {
			prevRes = append(prevRes, r)
		}
		opts.Previous = prev
		opts.Change = Change{Configs: filesource.ChangedResources(prevRes, resources)}
	}
	return NewPushContext(opts)
}

// edited is changeBase with the named documents replaced ("" removes).
func edited(edits map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range changeBase {
		out[k] = v
	}
	for k, v := range edits {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

var changeProxies = []*Proxy{
	{ID: "shop", Type: Sidecar, Namespace: "shop", Labels: map[string]string{"app": "productpage"}},
	{ID: "reviews-1", Type: Sidecar, Namespace: "shop", Labels: map[string]string{"app": "reviews"},
		Inbound: []InboundPort{{Address: "10.0.0.1:9080", App: "127.0.0.1:19080"}}},
	{ID: "scoped", Type: Sidecar, Namespace: "scoped", Labels: map[string]string{"app": "x"}},
	{ID: "other", Type: Sidecar, Namespace: "other", Labels: map[string]string{"app": "y"}},
	{ID: "ingress", Type: Router, Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}},
	{ID: "egress", Type: Router, Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}},
}

const allProxies = "egress ingress other reviews-1 scoped shop"

func affected(pc *PushContext, ch Change) string {
	var out []string
	for _, p := range changeProxies {
		if pc.AffectsProxy(p, ch) {
			out = append(out, p.ID)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestAffectsProxy(t *testing.T) {
	cases := []struct {
		name  string
		edits map[string]string
		want  string
	}{
		{"mesh VirtualService: sidecars that import its host", map[string]string{
			"reviews-vs": strings.Replace(changeBase["reviews-vs"], "{host: reviews}", "{host: reviews, subset: v1}", 1)},
			"other reviews-1 shop"},
		{"VirtualService exported to its namespace only, removed", map[string]string{"to-backend": ""}, "other"},
		{"gateway VirtualService: the routers its Gateway selects", map[string]string{
			"gw-vs": strings.Replace(changeBase["gw-vs"], "shop.example.com", "www.example.com", 1)}, "ingress"},
		{"Gateway: the routers it selects, old or new selector", map[string]string{
			"ingress": strings.Replace(changeBase["ingress"], "number: 80", "number: 8080", 1)}, "ingress"},
		{"Sidecar: the sidecars of its namespace", map[string]string{
			"scoped-sidecar": strings.Replace(changeBase["scoped-sidecar"], `"./*", `, "", 1)}, "scoped"},
		{"Sidecar with a selector: the sidecars it selects", map[string]string{"sel-sidecar": `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: shop}
spec: {workloadSelector: {labels: {app: reviews}}, egress: [{hosts: ["./*"]}]}`}, "reviews-1"},
		{"root namespace Sidecar: every sidecar", map[string]string{"root-sidecar": `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {egress: [{hosts: ["./*"]}]}`}, "other reviews-1 scoped shop"},
		{"DestinationRule: proxies with a cluster for its host", map[string]string{
			"reviews-dr": strings.Replace(changeBase["reviews-dr"], "{name: v1, labels: {version: v1}}", "{name: v2, labels: {version: v2}}", 1)}, "egress ingress other reviews-1 shop"},
		{"Service exported to its namespace only", map[string]string{
			"private": strings.Replace(changeBase["private"], "port: 80", "port: 81", 1)}, "other"},
		{"Service a VirtualService routes to: everyone (ports read for every route)", map[string]string{
			"backend": strings.Replace(changeBase["backend"], "port: 80", "port: 81", 1)}, allProxies},
		{"Service a Sidecar scope imports", map[string]string{
			"ratings": strings.Replace(changeBase["ratings"], "port: 9080", "port: 9081", 1)}, "egress ingress other reviews-1 scoped shop"},
		{"WorkloadEntry: who sees its services, and the sidecar at its address", map[string]string{
			"r1": strings.Replace(changeBase["r1"], "10.0.0.1", "10.0.0.9", 1)}, "egress ingress other reviews-1 shop"},
		{"WorkloadEntry selected by nothing", map[string]string{"lonely": `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: lonely, namespace: shop}
spec: {address: 10.0.0.7, labels: {app: nothing}}`}, ""},
		{"AuthorizationPolicy with a selector: the workloads it selects", map[string]string{"ap": `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{}]}`}, "reviews-1"},
		{"AuthorizationPolicy in the root namespace: everyone", map[string]string{"ap": `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec: {action: DENY, rules: [{}]}`}, allProxies},
		{"Telemetry without selector: its namespace", map[string]string{"tel": `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: other}
spec: {tracing: [{randomSamplingPercentage: 10}]}`}, "other"},
		{"Gateway API route to a Gateway: routers", map[string]string{"route": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{name: gw, namespace: istio-system}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]`}, "egress ingress"},
		{"Gateway API mesh route (Service parent): everyone", map[string]string{"route": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules: [{backendRefs: [{name: ratings, port: 9080}]}]`}, allProxies},
		{"PeerAuthentication: everyone (auto mTLS reads every namespace's)", map[string]string{"pa": `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: other}
spec: {mtls: {mode: DISABLE}}`}, allProxies},
		{"Secret: routers (no DestinationRule names a credential)", map[string]string{"secret": `apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.crt: YQ==, tls.key: YQ==}`}, "egress ingress"},
	}
	prev := changePush(t, changeBase, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc := changePush(t, edited(c.edits), prev)
			ch := Change{Configs: filesource.ChangedResources(sortedResources(prev), sortedResources(pc))}
			if len(ch.Configs) != 1 {
				t.Fatalf("want one changed config, got %v", ch.Configs)
			}
			if got := affected(pc, ch); got != c.want {
				t.Errorf("affected = %q, want %q", got, c.want)
			}
		})
	}
	t.Run("full, unknown kind, no previous push", func(t *testing.T) {
		pc := changePush(t, changeBase, prev)
		if got := affected(pc, FullChange); got != allProxies {
			t.Errorf("full: %q", got)
		}
		unknown := Change{Configs: map[ConfigKey]struct{}{{Kind: "Frobnicator", Namespace: "x", Name: "y"}: {}}}
		if got := affected(pc, unknown); got != allProxies {
			t.Errorf("unknown kind: %q", got)
		}
		if got := affected(pc, Change{Configs: map[ConfigKey]struct{}{}}); got != "" {
			t.Errorf("empty change: %q", got)
		}
		noPrev := changePush(t, changeBase, nil)
		vs := Change{Configs: map[ConfigKey]struct{}{{Kind: config.KindVirtualService, Namespace: "other", Name: "to-backend"}: {}}}
		if got := affected(noPrev, vs); got != allProxies {
			t.Errorf("without a previous push: %q", got)
		}
	})
}

func sortedResources(pc *PushContext) []*config.Resource {
	out := make([]*config.Resource, 0, len(pc.resources))
	for _, r := range pc.resources {
		out = append(out, r)
	}
	config.SortResources(out)
	return out
}

func TestEndpointsOnly(t *testing.T) {
	dnsEntry := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: shop}
spec:
  hosts: [dns.example.com]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: DNS
  workloadSelector: {labels: {app: dnsbacked}}`
	inline := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inline, namespace: shop}
spec:
  hosts: [inline.example.com]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]`
	n1 := `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: n1, namespace: shop}
spec: {address: 10.0.0.5, labels: {app: ratings}}`
	// Kubernetes endpoints of ratings: a slice naming Pod p1 on node1.
	slice := `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ratings-1, namespace: shop, labels: {kubernetes.io/service-name: ratings}}
addressType: IPv4
endpoints: [{addresses: [10.3.0.1], targetRef: {kind: Pod, name: p1}}]
ports: [{name: http, port: 9080}]`
	pod := `apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: shop, labels: {app: ratings}}
spec: {serviceAccountName: ratings, nodeName: node1, containers: [{name: app, image: x}]}`
	node := "apiVersion: v1\nkind: Node\nmetadata: {name: node1, labels: {topology.kubernetes.io/region: eu}}"
	base := edited(map[string]string{"dns": dnsEntry, "inline": inline, "n1": n1, "slice": slice, "pod": pod, "node": node})
	prev := changePush(t, base, nil)
	r1 := changeBase["r1"]
	cases := []struct {
		name  string
		edits map[string]string
		hosts string // "" with ok false means not endpoint-only
		ok    bool
	}{
		{"WorkloadEntry address", map[string]string{"r1": strings.Replace(r1, "10.0.0.1", "10.0.0.9", 1)}, "reviews.shop.svc.cluster.local", true},
		{"WorkloadEntry added with an identity the service has", map[string]string{"r2": strings.Replace(strings.Replace(r1, "r1", "r2", 1), "10.0.0.1", "10.0.0.2", 1)}, "reviews.shop.svc.cluster.local", true},
		{"WorkloadEntry without identity moving from one service to another", map[string]string{"n1": strings.Replace(n1, "app: ratings", "app: reviews", 1)},
			"ratings.shop.svc.cluster.local reviews.shop.svc.cluster.local", true},
		{"WorkloadEntry taking its service's only identity away", map[string]string{"r1": strings.Replace(r1, "app: reviews", "app: ratings", 1)}, "", false},
		{"WorkloadEntry removed", map[string]string{"r1": ""}, "", false}, // the service loses the identity reviews
		{"service account changed (cluster SANs)", map[string]string{"r1": strings.Replace(r1, "serviceAccount: reviews", "serviceAccount: other", 1)}, "", false},
		{"labels changed under the same identity (subsets filter by labels)", map[string]string{"r1": strings.Replace(r1, "{app: reviews}", "{app: reviews, version: v1}", 1)}, "", false},
		{"WorkloadEntry of a DNS ServiceEntry (endpoints in CDS)", map[string]string{"d1": `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: d1, namespace: shop}
spec: {address: 10.2.0.1, labels: {app: dnsbacked}}`}, "", false},
		{"EndpointSlice address", map[string]string{"slice": strings.Replace(slice, "10.3.0.1", "10.3.0.2", 1)}, "ratings.shop.svc.cluster.local", true},
		{"EndpointSlice endpoint not ready: the service loses the Pod's identity", map[string]string{"slice": strings.Replace(slice, "targetRef:", "conditions: {ready: false}, targetRef:", 1)}, "", false},
		{"Node locality", map[string]string{"node": strings.Replace(node, "region: eu", "region: us", 1)}, "ratings.shop.svc.cluster.local", true},
		{"Pod labels (subsets filter by labels)", map[string]string{"pod": strings.Replace(pod, "{app: ratings}", "{app: ratings, version: v2}", 1)}, "", false},
		{"Pod service account", map[string]string{"pod": strings.Replace(pod, "serviceAccountName: ratings", "serviceAccountName: other", 1)}, "", false},
		{"ServiceEntry endpoints only", map[string]string{"inline": strings.Replace(inline, "10.1.0.1", "10.1.0.2", 1)}, "inline.example.com", true},
		{"ServiceEntry port", map[string]string{"inline": strings.Replace(inline, "number: 80", "number: 81", 1)}, "", false},
		{"VirtualService", map[string]string{"reviews-vs": strings.Replace(changeBase["reviews-vs"], "{host: reviews}", "{host: reviews, subset: v1}", 1)}, "", false},
		{"PASSTHROUGH subset (ORIGINAL_DST cluster reads every endpoint)", nil, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, to := prev, (*PushContext)(nil)
			if c.edits == nil {
				withDR := map[string]string{}
				for k, v := range base {
					withDR[k] = v
				}
				withDR["reviews-dr"] = strings.Replace(changeBase["reviews-dr"], "labels: {version: v1}}", "labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}", 1)
				from = changePush(t, withDR, nil)
				withDR["r1"] = strings.Replace(r1, "10.0.0.1", "10.0.0.9", 1)
				to = changePush(t, withDR, from)
			} else {
				next := map[string]string{}
				for k, v := range base {
					next[k] = v
				}
				for k, v := range c.edits {
					if v == "" {
						delete(next, k)
					} else {
						next[k] = v
					}
				}
				to = changePush(t, next, from)
			}
			ch := Change{Configs: filesource.ChangedResources(sortedResources(from), sortedResources(to))}
			hosts, ok := to.EndpointsOnly(ch, from)
			if ok != c.ok || strings.Join(hosts, " ") != c.hosts {
				t.Errorf("EndpointsOnly = %v %v, want %q %v (change %v)", hosts, ok, c.hosts, c.ok, ch.Configs)
			}
		})
	}
	if _, ok := prev.EndpointsOnly(FullChange, prev); ok {
		t.Errorf("a full change is endpoint-only")
	}
}

func TestInboundDependsOn(t *testing.T) {
	prev := changePush(t, changeBase, nil)
	moved := changePush(t, edited(map[string]string{"r1": strings.Replace(changeBase["r1"], "10.0.0.1", "10.0.0.9", 1)}), prev)
	ch := Change{Configs: filesource.ChangedResources(sortedResources(prev), sortedResources(moved))}
	for _, p := range changeProxies {
		want := p.ID == "reviews-1" // its inbound address is r1's old endpoint
		if got := moved.InboundDependsOn(p, ch, prev); got != want {
			t.Errorf("%s: InboundDependsOn = %v, want %v", p.ID, got, want)
		}
	}
	wildcard := &Proxy{ID: "any", Type: Sidecar, Namespace: "shop", Inbound: []InboundPort{{Address: "0.0.0.0:9080"}}}
	if !moved.InboundDependsOn(wildcard, ch, prev) {
		t.Errorf("a sidecar listening on 0.0.0.0:9080 does not depend on r1")
	}
	other := &Proxy{ID: "port", Type: Sidecar, Namespace: "shop", Inbound: []InboundPort{{Address: "10.0.0.1:9081"}}}
	if moved.InboundDependsOn(other, ch, prev) {
		t.Errorf("a sidecar on another port depends on r1")
	}
}

// TestPushContextFromPrevious: a push context derived from the previous
// one (registry.Derive) has the endpoints of a fresh one.
func TestPushContextFromPrevious(t *testing.T) {
	prev := changePush(t, changeBase, nil)
	docs := edited(map[string]string{
		"r1": strings.Replace(changeBase["r1"], "10.0.0.1", "10.0.0.9", 1),
		"r2": strings.Replace(strings.Replace(changeBase["r1"], "r1", "r2", 1), "app: reviews", "app: ratings", 1),
	})
	derived, fresh := changePush(t, docs, prev), changePush(t, docs, nil)
	if derived.prev == nil || len(derived.Services()) != len(fresh.Services()) {
		t.Fatalf("derived push: %d services, fresh %d", len(derived.Services()), len(fresh.Services()))
	}
	for i, svc := range fresh.Services() {
		d := derived.Services()[i]
		for _, port := range svc.Ports {
			a, b := endpointList(fresh.Endpoints(svc, port.Number)), endpointList(derived.Endpoints(d, port.Number))
			if a != b {
				t.Errorf("%s:%d: derived %s, fresh %s", svc.Hostname, port.Number, b, a)
			}
		}
	}
	if got := endpointList(derived.Endpoints(derived.ServicesForHost("ratings.shop.svc.cluster.local")[0], 9080)); got != "10.0.0.1:9080" {
		t.Errorf("ratings endpoints %s", got)
	}
}

func endpointList(eps []*registry.Endpoint) string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s:%d", e.Address, e.Port))
	}
	return strings.Join(out, ",")
}

func TestChangeMerge(t *testing.T) {
	a := ConfigKey{Kind: config.KindWorkloadEntry, Namespace: "shop", Name: "r1"}
	b := ConfigKey{Kind: config.KindService, Namespace: "shop", Name: "reviews"}
	one, two := Change{Configs: map[ConfigKey]struct{}{a: {}}}, Change{Configs: map[ConfigKey]struct{}{b: {}}}
	m := one.Merge(two)
	if m.Full || len(m.Configs) != 2 || len(one.Configs) != 1 {
		t.Errorf("merge: %+v (inputs %+v %+v)", m, one, two)
	}
	if !one.Merge(FullChange).Full || !(Change{}).Merge(one).Full {
		t.Errorf("merging a full (or unknown) change is not full")
	}
}

// TestAffectsProxyConcurrent: the push server asks from several workers at
// once (run with -race).
func TestAffectsProxyConcurrent(t *testing.T) {
	prev := changePush(t, changeBase, nil)
	pc := changePush(t, edited(map[string]string{"backend": strings.Replace(changeBase["backend"], "port: 80", "port: 81", 1)}), prev)
	ch := Change{Configs: filesource.ChangedResources(sortedResources(prev), sortedResources(pc))}
	done := make(chan string)
	for i := 0; i < 4; i++ {
		go func() {
			got := affected(pc, ch)
			pc.EndpointsOnly(ch, prev)
			for _, p := range changeProxies {
				pc.InboundDependsOn(p, ch, prev)
			}
			done <- got
		}()
	}
	for i := 0; i < 4; i++ {
		if got := <-done; got != allProxies {
			t.Errorf("affected = %q", got)
		}
	}
}
