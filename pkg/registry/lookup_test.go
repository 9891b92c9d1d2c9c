package registry

import (
	"testing"

	"github.com/sluice-mesh/sluice/pkg/config"
)

func TestLookups(t *testing.T) {
	r := build(t, `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: all, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [a.example.com, b.example.com]
  ports: [{name: http, number: 80, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r1, namespace: shop, labels: {version: v1}}
spec: {address: 10.0.0.1, labels: {app: reviews}}
`)
	names := func(svcs []*Service) string {
		var out string
		for _, s := range svcs {
			out += s.Hostname + " "
		}
		return out
	}
	if got := names(r.ServicesSelecting("shop", map[string]string{"app": "reviews", "version": "v1"})); got != "reviews.shop.svc.cluster.local a.example.com b.example.com " {
		t.Errorf("selecting app=reviews,version=v1: %q", got)
	}
	if got := names(r.ServicesSelecting("shop", map[string]string{"app": "reviews"})); got != "reviews.shop.svc.cluster.local " {
		t.Errorf("selecting app=reviews: %q (a Service without selector selects nothing)", got)
	}
	if got := names(r.ServicesSelecting("other", map[string]string{"app": "reviews"})); got != "" {
		t.Errorf("other namespace: %q", got)
	}
	if got := names(r.ServicesOf(config.Key{Kind: config.KindServiceEntry, Namespace: "shop", Name: "vms"})); got != "a.example.com b.example.com " {
		t.Errorf("ServicesOf vms: %q", got)
	}
	we := &config.Resource{Kind: config.KindWorkloadEntry, Meta: config.Meta{Labels: map[string]string{"version": "v1", "app": "meta"}}}
	if WorkloadLabels(we) != nil {
		t.Errorf("labels of a resource without WorkloadEntry spec")
	}
	// The WorkloadEntry's spec labels win over its metadata labels, and
	// both select: the ServiceEntry takes r1 by app (spec) and version (metadata).
	if got := endpoints(r, service(t, r, "a.example.com", "shop"), 80); got != "10.0.0.1:80(shop/r1)" {
		t.Errorf("a.example.com endpoints: %s", got)
	}
}
