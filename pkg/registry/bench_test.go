package registry

import (
	"fmt"
	"os"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// benchMesh is services Kubernetes Services spread over 10 namespaces,
// each selecting perService WorkloadEntries of its own.
func benchMesh(services, perService int) []*config.Resource {
	var out []*config.Resource
	for i := 0; i < services; i++ {
		ns := fmt.Sprintf("ns%d", i%10)
		app := fmt.Sprintf("app%d", i)
		out = append(out, &config.Resource{Kind: config.KindService, Meta: config.Meta{Name: app, Namespace: ns},
			Spec: &corev1.ServiceSpec{ClusterIP: "10.96.0.1", Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}}})
		for j := 0; j < perService; j++ {
			out = append(out, benchEntry(ns, app, j, fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j)))
		}
	}
	config.SortResources(out)
	return out
}

func benchEntry(ns, app string, j int, addr string) *config.Resource {
	return &config.Resource{Kind: config.KindWorkloadEntry, Meta: config.Meta{Name: fmt.Sprintf("%s-%d", app, j), Namespace: ns},
		Spec: &networking.WorkloadEntry{Address: addr, ServiceAccount: app,
			Labels: map[string]string{"app": app, "version": "v1", "security.istio.io/tlsMode": "istio"}}}
}

func BenchmarkBuild(b *testing.B) {
	for _, size := range []int{1000, 5000} {
		resources := benchMesh(size, 10)
		b.Run(fmt.Sprintf("legacy/%dx10", size), func(b *testing.B) {
			if size > 1000 && os.Getenv("SLUICE_BENCH_LEGACY_5000") == "" {
				// About 30 s per build on 2 cores: set the variable to run it.
				b.Skip("SLUICE_BENCH_LEGACY_5000 not set")
			}
			for i := 0; i < b.N; i++ {
				legacyBuild(resources, BuildOptions{})
			}
		})
		b.Run(fmt.Sprintf("indexed/%dx10", size), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Build(resources, BuildOptions{})
			}
		})
		// One WorkloadEntry moves: Derive from the previous registry.
		b.Run(fmt.Sprintf("derive1WE/%dx10", size), func(b *testing.B) {
			prev := Build(resources, BuildOptions{})
			moved := append([]*config.Resource(nil), resources...)
			var key config.Key
			for i, r := range moved {
				if r.Kind == config.KindWorkloadEntry && r.Name == "app7-3" {
					moved[i] = benchEntry(r.Namespace, "app7", 3, "10.200.0.1")
					key = r.Key()
				}
			}
			changed := map[config.Key]struct{}{key: {}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Derive(prev, moved, changed)
			}
		})
		// One Service changes its ports: the service list is rebuilt, the
		// other services and their endpoint lists are shared.
		b.Run(fmt.Sprintf("derive1Service/%dx10", size), func(b *testing.B) {
			prev := Build(resources, BuildOptions{})
			edited := append([]*config.Resource(nil), resources...)
			var key config.Key
			for i, r := range edited {
				if r.Kind == config.KindService && r.Name == "app7" {
					spec := r.Spec.(*corev1.ServiceSpec).DeepCopy()
					spec.Ports = spec.Ports[:1]
					edited[i] = &config.Resource{Kind: r.Kind, Meta: r.Meta, Spec: spec}
					key = r.Key()
				}
			}
			changed := map[config.Key]struct{}{key: {}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Derive(prev, edited, changed)
			}
		})
	}
}
