package registry

import (
	"fmt"
	"os"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// benchKubeMesh is services Kubernetes Services over 10 namespaces, each
// with one EndpointSlice of perService Pods, spread over 100 Nodes.
func benchKubeMesh(services, perService int) []*config.Resource {
	var out []*config.Resource
	for n := 0; n < 100; n++ {
		name := fmt.Sprintf("node%d", n)
		out = append(out, &config.Resource{Kind: config.KindNode, Meta: config.Meta{Name: name},
			Spec: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{config.LabelRegion: "r", config.LabelZone: fmt.Sprintf("z%d", n%3)}}}})
	}
	for i := 0; i < services; i++ {
		ns := fmt.Sprintf("ns%d", i%10)
		app := fmt.Sprintf("app%d", i)
		out = append(out, &config.Resource{Kind: config.KindService, Meta: config.Meta{Name: app, Namespace: ns},
			Spec: &corev1.ServiceSpec{ClusterIP: "10.96.0.1", Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}}})
		slice := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4}
		http, grpc, p1, p2 := "http", "grpc", int32(8080), int32(9090)
		slice.Ports = []discoveryv1.EndpointPort{{Name: &http, Port: &p1}, {Name: &grpc, Port: &p2}}
		for j := 0; j < perService; j++ {
			name := fmt.Sprintf("%s-%d", app, j)
			labels := map[string]string{"app": app, "version": "v1", "security.istio.io/tlsMode": "istio"}
			out = append(out, &config.Resource{Kind: config.KindPod, Meta: config.Meta{Name: name, Namespace: ns, Labels: labels},
				Spec: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
					Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node%d", (i*perService+j)%100), ServiceAccountName: app}}})
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name}})
		}
		out = append(out, &config.Resource{Kind: config.KindEndpointSlice,
			Meta: config.Meta{Name: app + "-abc", Namespace: ns, Labels: map[string]string{config.LabelServiceName: app}}, Spec: slice})
	}
	config.SortResources(out)
	return out
}

// BenchmarkDeriveKube: one Pod's labels change (a Derive re-reads its
// Service) in a mesh of Services with EndpointSlices and Pods.
func BenchmarkDeriveKube(b *testing.B) {
	resources := benchKubeMesh(1000, 10)
	b.Run("build/1000x10", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Build(resources, BuildOptions{})
		}
	})
	b.Run("derive1Pod/1000x10", func(b *testing.B) {
		prev := Build(resources, BuildOptions{})
		moved := append([]*config.Resource(nil), resources...)
		var key config.Key
		for i, r := range moved {
			if r.Kind == config.KindPod {
				pod := r.Spec.(*corev1.Pod).DeepCopy()
				pod.Labels["version"] = "v2"
				c := *r
				c.Spec, c.Labels = pod, pod.Labels
				moved[i], key = &c, r.Key()
				break
			}
		}
		changed := map[config.Key]struct{}{key: {}}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			Derive(prev, moved, changed)
		}
	})
}
