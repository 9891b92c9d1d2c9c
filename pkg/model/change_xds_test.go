package model_test

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// soundDocs are documents with their variants ("" is absent); the first
// variant is the starting mesh.
var soundDocs = map[string][]string{
	"svc-reviews": {
		svc("reviews", "shop", "", "{app: reviews}", "[{name: http, port: 9080}]"),
		svc("reviews", "shop", "", "{app: reviews}", "[{name: http, port: 9080}, {name: grpc, port: 9081}]"),
		svc("reviews", "shop", `annotations: {networking.istio.io/exportTo: "."}`, "{app: reviews}", "[{name: http, port: 9080}]"),
	},
	"svc-ratings": {svc("ratings", "shop", "", "{app: ratings}", "[{name: http, port: 9080}]"), ""},
	"svc-private": {
		svc("private", "other", `annotations: {networking.istio.io/exportTo: "."}`, "{app: private}", "[{name: http, port: 80}]"),
		svc("private", "other", `annotations: {networking.istio.io/exportTo: "."}`, "{app: private}", "[{name: http, port: 81}]"),
	},
	"we-r1": {
		we("r1", "shop", "10.0.0.1", "{app: reviews}", "reviews"), we("r1", "shop", "10.0.0.9", "{app: reviews}", "reviews"),
		we("r1", "shop", "10.0.0.1", "{app: reviews, version: v1}", "reviews"), we("r1", "shop", "10.0.0.1", "{app: reviews}", "other"),
		"", we("r1", "shop", "10.0.0.1", "{app: ratings}", "reviews"),
	},
	"we-r2": {"", we("r2", "shop", "10.0.0.2", "{app: reviews}", "reviews"), we("r2", "shop", "10.0.0.3", "{app: ratings}", "")},
	"we-p1": {we("p1", "other", "10.1.0.1", "{app: private}", ""), we("p1", "other", "10.1.0.2", "{app: private}", "")},
	"we-d1": {"", we("d1", "shop", "10.2.0.1", "{app: dnsbacked}", "")},
	"se-inline": {
		se("inline", "STATIC", "80", "endpoints: [{address: 10.3.0.1}]"),
		se("inline", "STATIC", "80", "endpoints: [{address: 10.3.0.2}, {address: 10.3.0.1}]"),
		se("inline", "STATIC", "81", "endpoints: [{address: 10.3.0.1}]"),
	},
	"se-dns": {se("dns", "DNS", "80", "workloadSelector: {labels: {app: dnsbacked}}"), ""},
	"sidecar-scoped": {
		`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec: {egress: [{hosts: ["./*", "shop/ratings.shop.svc.cluster.local"]}]}`,
		`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: scoped}
spec: {egress: [{hosts: ["./*"]}]}`, "",
	},
	"gw-ingress": {gateway("{istio: ingressgateway}", 80), gateway("{istio: ingressgateway}", 8080), gateway("{istio: other}", 80)},
	"vs-reviews": {
		`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}`,
		`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec: {hosts: [reviews], http: [{timeout: 3s, route: [{destination: {host: reviews}}]}]}`, "",
	},
	"vs-front": {
		`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: shop}
spec: {hosts: [shop.example.com], gateways: [istio-system/ingress], http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]}`,
		`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: shop}
spec: {hosts: [www.example.com], gateways: [istio-system/ingress], http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]}`, "",
	},
	"dr-reviews": {
		dr("subsets: [{name: v1, labels: {version: v1}}]"), dr("subsets: [{name: v2, labels: {version: v2}}]"),
		dr("subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}]"),
		dr("trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}"),
	},
	"ap": {"", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec: {selector: {matchLabels: {app: reviews}}, action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}`},
	"tel": {"", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: other}
spec: {accessLogging: [{providers: [{name: envoy}]}]}`},
	"svc-backend": {
		svc("backend", "other", `annotations: {networking.istio.io/exportTo: "."}`, "{app: backend}", "[{name: http, port: 80}]"),
		svc("backend", "other", `annotations: {networking.istio.io/exportTo: "."}`, "{app: backend}", "[{name: http, port: 8080}]"),
	},
	"vs-to-backend": {"", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-backend, namespace: shop}
spec: {hosts: [front.shop.svc.cluster.local], http: [{route: [{destination: {host: backend.other.svc.cluster.local}}]}]}`},
	"sidecar-sel": {"", `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: shop}
spec: {workloadSelector: {labels: {app: reviews}}, egress: [{hosts: ["./*"]}]}`},
	"route-mesh": {"", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules: [{backendRefs: [{name: ratings, port: 9080}]}]`},
	"dr-root": {"", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external, namespace: istio-system}
spec: {host: "*.example.com", trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}}`},
	"se-other": {"", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private-ext, namespace: other}
spec: {hosts: [private.example.com], exportTo: ["."], ports: [{name: http, number: 80, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 10.4.0.1}]}`},
	"tel-root": {"", `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh, namespace: istio-system}
spec: {accessLogging: [{providers: [{name: envoy}]}]}`},
	// Kubernetes endpoints: a Service's EndpointSlices, the Pods they
	// name, the Pods' Nodes.
	"svc-details": {svc("details", "shop", "", "{app: details}", "[{name: http, port: 9080, targetPort: web}]"), ""},
	"slice-details": {
		slice("details-a", "details", "[{addresses: [10.5.0.1], targetRef: {kind: Pod, name: d1}}]", "[{name: http, port: 9080}]"),
		slice("details-a", "details", "[{addresses: [10.5.0.7], targetRef: {kind: Pod, name: d1}}]", "[{name: http, port: 9080}]"),
		slice("details-a", "details", "[{addresses: [10.5.0.1], conditions: {ready: false}, targetRef: {kind: Pod, name: d1}}]", "[{name: http, port: 9080}]"),
		slice("details-a", "details", "[{addresses: [10.5.0.1], targetRef: {kind: Pod, name: d1}}, {addresses: [10.5.0.2], targetRef: {kind: Pod, name: d2}}]", "[{name: http}]"),
		slice("details-a", "reviews", "[{addresses: [10.0.0.1], targetRef: {kind: Pod, name: d1}}]", "[{name: http, port: 9080}]"),
		"",
	},
	"slice-details-b": {"", slice("details-b", "details", "[{addresses: [10.5.0.3]}]", "[{name: http, port: 9080}]")},
	"pod-d1": {
		pod("d1", "{app: details, version: v1}", "details", "n1", 9080), pod("d1", "{app: details, version: v2}", "details", "n1", 9080),
		pod("d1", "{app: details, version: v1}", "other", "n1", 9080), pod("d1", "{app: details, version: v1}", "details", "n2", 9090), "",
	},
	"pod-d2":  {"", pod("d2", "{app: details, version: v2}", "details", "n2", 9080)},
	"node-n1": {node("n1", "{topology.kubernetes.io/region: eu}"), node("n1", "{topology.kubernetes.io/region: us, topology.kubernetes.io/zone: us-1}"), ""},
	"pa": {"", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}`, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: other}
spec: {mtls: {mode: DISABLE}}`},
}

func svc(name, ns, meta, selector, ports string) string {
	if meta != "" {
		meta = ", " + meta
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s%s}\nspec: {selector: %s, ports: %s}", name, ns, meta, selector, ports)
}

func slice(name, service, endpoints, ports string) string {
	return fmt.Sprintf("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s, namespace: shop, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nendpoints: %s\nports: %s", name, service, endpoints, ports)
}

func pod(name, labels, sa, node string, port int) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: shop, labels: %s}\nspec: {serviceAccountName: %s, nodeName: %s, containers: [{name: app, image: x, ports: [{name: web, containerPort: %d}]}]}", name, labels, sa, node, port)
}

func node(name, labels string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata: {name: %s, labels: %s}", name, labels)
}

func we(name, ns, addr, labels, sa string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s, namespace: %s}\nspec: {address: %s, labels: %s, serviceAccount: %q}", name, ns, addr, labels, sa)
}

func se(name, resolution, port, extra string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: shop}\nspec: {hosts: [%s.example.com], ports: [{name: http, number: %s, protocol: HTTP}], resolution: %s, %s}", name, name, port, resolution, extra)
}

func gateway(selector string, port int) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ingress, namespace: istio-system}\nspec: {selector: %s, servers: [{port: {number: %d, name: http, protocol: HTTP}, hosts: [\"*\"]}]}", selector, port)
}

func dr(spec string) string {
	return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: shop}\nspec: {host: reviews, " + spec + "}"
}

var soundProxies = []*model.Proxy{
	{ID: "shop", Type: model.Sidecar, Namespace: "shop", Labels: map[string]string{"app": "productpage"}, IPs: []string{"10.0.0.50"},
		OutboundAddress: "127.0.0.1:15001", Inbound: []model.InboundPort{{Address: "10.0.0.50:9080", App: "127.0.0.1:30001"}}},
	{ID: "reviews-1", Type: model.Sidecar, Namespace: "shop", Labels: map[string]string{"app": "reviews"}, IPs: []string{"10.0.0.1"},
		OutboundAddress: "127.0.0.1:15001", Inbound: []model.InboundPort{{Address: "10.0.0.1:9080", App: "127.0.0.1:30002"}}},
	{ID: "scoped", Type: model.Sidecar, Namespace: "scoped", Labels: map[string]string{"app": "x"}, IPs: []string{"10.9.0.1"}, OutboundAddress: "127.0.0.1:15001"},
	{ID: "private-1", Type: model.Sidecar, Namespace: "other", Labels: map[string]string{"app": "private"}, IPs: []string{"10.1.0.1"},
		OutboundAddress: "127.0.0.1:15001", Inbound: []model.InboundPort{{Address: "10.1.0.1:80", App: "127.0.0.1:30003"}}},
	// Captured (REDIRECT): its inbound ports are the endpoints at its IP.
	{ID: "reviews-captured", Type: model.Sidecar, Namespace: "shop", Labels: map[string]string{"app": "reviews"}, IPs: []string{"10.0.0.1"},
		InterceptionMode: model.InterceptionRedirect},
	{ID: "ingress", Type: model.Router, Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}},
	{ID: "egress", Type: model.Router, Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, IPs: []string{"127.0.0.1"}},
}

func soundPush(t *testing.T, state map[string]int, prev *model.PushContext, prevRes []*config.Resource) (*model.PushContext, []*config.Resource, model.Change) {
	t.Helper()
	var docs []string
	for name, variants := range soundDocs {
		if d := variants[state[name]]; d != "" {
			docs = append(docs, d)
		}
	}
	dec := config.Decode([]byte(strings.Join(docs, "\n---\n")), config.DecodeOptions{File: "mesh.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	res := dec.Resources
	config.SortResources(res)
	opts := model.PushOptions{Mesh: &meshv1alpha1.MeshConfig{}, Resources: res}
	var ch model.Change
	if prev != nil {
		ch = model.Change{Configs: filesource.ChangedResources(prevRes, res)}
		opts.Previous, opts.Change = prev, ch
	}
	return model.NewPushContext(opts), res, ch
}

// TestChangeDecisionsAgainstGeneration checks AffectsProxy and
// EndpointsOnly against what xdsgen generates, over random edit
// sequences: a proxy not affected gets exactly the config it had; under
// an endpoint-only change a proxy whose inbound does not depend on the
// change gets the same listeners, routes and clusters, and EDS differs
// only for the clusters of the returned hosts.
func TestChangeDecisionsAgainstGeneration(t *testing.T) {
	names := make([]string, 0, len(soundDocs))
	for n := range soundDocs {
		names = append(names, n)
	}
	sort.Strings(names)
	var unaffected, edsOnly, steps, failed int
	for seed := int64(1); seed <= 16; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		state := map[string]int{}
		prev, prevRes, _ := soundPush(t, state, nil, nil)
		for step := 0; step < 25; step++ {
			for n := 1 + rnd.Intn(2); n > 0; n-- {
				name := names[rnd.Intn(len(names))]
				state[name] = rnd.Intn(len(soundDocs[name]))
			}
			cur, curRes, ch := soundPush(t, state, prev, prevRes)
			hosts, edsOK := cur.EndpointsOnly(ch, prev)
			steps++
			for _, p := range soundProxies {
				before, errB := xdsgen.Generate(prev, p)
				after, errA := xdsgen.Generate(cur, p)
				if errB != nil || errA != nil {
					failed++
					continue
				}
				where := fmt.Sprintf("seed %d step %d proxy %s change %v", seed, step, p.ID, ch.Configs)
				if !cur.AffectsProxy(p, ch) {
					unaffected++
					if diff := diffResources(before, after, nil); diff != "" {
						t.Errorf("%s: not affected, but generation differs: %s", where, diff)
					}
					continue
				}
				if edsOK && !cur.InboundDependsOn(p, ch, prev) {
					edsOnly++
					if diff := diffResources(before, after, hosts); diff != "" {
						t.Errorf("%s: endpoint-only for %v, but: %s", where, hosts, diff)
					}
				}
			}
			prev, prevRes = cur, curRes
		}
	}
	t.Logf("%d steps: %d proxy pushes skipped, %d EDS-only, %d generations failed", steps, unaffected, edsOnly, failed)
	if failed > 0 {
		t.Errorf("%d generations failed", failed)
	}
	if unaffected < 50 || edsOnly < 20 {
		t.Errorf("too few decisions exercised: %d skipped, %d EDS-only", unaffected, edsOnly)
	}
}

// diffResources names the first difference between two generations;
// with edsHosts non-nil, the ClusterLoadAssignments of clusters of those
// hosts may differ.
func diffResources(a, b *xdsgen.Resources, edsHosts []string) string {
	if d := diffList("listener", toMap(a.Listeners), toMap(b.Listeners), nil); d != "" {
		return d
	}
	if d := diffList("route", toMap(a.Routes), toMap(b.Routes), nil); d != "" {
		return d
	}
	if d := diffList("cluster", toMap(a.Clusters), toMap(b.Clusters), nil); d != "" {
		return d
	}
	if edsHosts == nil {
		edsHosts = []string{}
	}
	return diffList("endpoints", toMap(a.Endpoints), toMap(b.Endpoints), edsHosts)
}

type named interface {
	proto.Message
	GetName() string
}

type clusterNamed interface {
	proto.Message
	GetClusterName() string
}

func toMap[T proto.Message](list []T) map[string]proto.Message {
	out := map[string]proto.Message{}
	for _, m := range list {
		var name string
		switch v := any(m).(type) {
		case named:
			name = v.GetName()
		case clusterNamed:
			name = v.GetClusterName()
		}
		out[name] = m
	}
	return out
}

func diffList(kind string, a, b map[string]proto.Message, mayDiffer []string) string {
	for name, m := range a {
		if allowed(name, mayDiffer) {
			continue
		}
		if o, ok := b[name]; !ok || !proto.Equal(m, o) {
			return fmt.Sprintf("%s %s changed or removed", kind, name)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok && !allowed(name, mayDiffer) {
			return fmt.Sprintf("%s %s added", kind, name)
		}
	}
	return ""
}

func allowed(cluster string, hosts []string) bool {
	i := strings.LastIndexByte(cluster, '|')
	if i < 0 {
		return false
	}
	for _, h := range hosts {
		if cluster[i+1:] == h {
			return true
		}
	}
	return false
}
