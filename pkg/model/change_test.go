package model

import (
	"sort"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
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
