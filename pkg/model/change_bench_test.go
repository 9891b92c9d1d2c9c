package model

import (
	"fmt"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// benchPushResources is services Kubernetes Services over 10 namespaces,
// each with 10 WorkloadEntries, and a sidecar per service at its first
// entry's address.
func benchPushResources(services int) ([]*config.Resource, []*Proxy) {
	var out []*config.Resource
	var proxies []*Proxy
	for i := 0; i < services; i++ {
		ns, app := fmt.Sprintf("ns%d", i%10), fmt.Sprintf("app%d", i)
		out = append(out, &config.Resource{Kind: config.KindService, Meta: config.Meta{Name: app, Namespace: ns},
			Spec: &corev1.ServiceSpec{ClusterIP: "10.96.0.1", Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
		for j := 0; j < 10; j++ {
			out = append(out, benchWorkloadEntry(ns, app, j, fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j)))
		}
		proxies = append(proxies, &Proxy{ID: app, Type: Sidecar, Namespace: ns, Labels: map[string]string{"app": app},
			Inbound: []InboundPort{{Address: fmt.Sprintf("10.%d.%d.0:80", i/250, i%250)}}})
	}
	config.SortResources(out)
	return out, proxies
}

func benchWorkloadEntry(ns, app string, j int, addr string) *config.Resource {
	return &config.Resource{Kind: config.KindWorkloadEntry, Meta: config.Meta{Name: fmt.Sprintf("%s-%d", app, j), Namespace: ns},
		Spec: &networking.WorkloadEntry{Address: addr, ServiceAccount: app, Labels: map[string]string{"app": app}}}
}

// BenchmarkChange: one WorkloadEntry moves in a mesh of 1000 services
// (10,000 entries, 1000 sidecars): the push context built from scratch or
// derived from the previous one, and the per-push decision (EndpointsOnly
// once, AffectsProxy and InboundDependsOn per proxy).
func BenchmarkChange(b *testing.B) {
	resources, proxies := benchPushResources(1000)
	mesh := &meshv1alpha1.MeshConfig{}
	prev := NewPushContext(PushOptions{Mesh: mesh, Resources: resources})
	moved := append([]*config.Resource(nil), resources...)
	var key ConfigKey
	for i, r := range moved {
		if r.Kind == config.KindWorkloadEntry && r.Name == "app7-0" {
			moved[i] = benchWorkloadEntry(r.Namespace, "app7", 0, "10.200.0.1")
			key = r.Key()
		}
	}
	ch := Change{Configs: map[ConfigKey]struct{}{key: {}}}
	b.Run("NewPushContext/scratch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			NewPushContext(PushOptions{Mesh: mesh, Resources: moved})
		}
	})
	b.Run("NewPushContext/previous", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			NewPushContext(PushOptions{Mesh: mesh, Resources: moved, Previous: prev, Change: ch})
		}
	})
	pc := NewPushContext(PushOptions{Mesh: mesh, Resources: moved, Previous: prev, Change: ch})
	b.Run("decide/1000proxies", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			hosts, ok := pc.EndpointsOnly(ch, prev)
			if !ok || len(hosts) != 1 {
				b.Fatalf("EndpointsOnly = %v %v", hosts, ok)
			}
			affected, full := 0, 0
			for _, p := range proxies {
				if pc.AffectsProxy(p, ch) {
					affected++
					if pc.InboundDependsOn(p, ch, prev) {
						full++
					}
				}
			}
			if affected != len(proxies) || full != 1 {
				b.Fatalf("affected %d, full %d", affected, full)
			}
		}
	})
}
