package inject

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

// proxyArg is the value of flag in the injected proxy's args ("" and
// false when absent).
func proxyArg(t *testing.T, pod *corev1.Pod, flag string) (string, bool) {
	t.Helper()
	var sc *corev1.Container
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == ProxyContainerName {
				sc = &list[i]
			}
		}
	}
	if sc == nil {
		t.Fatal("no istio-proxy container")
	}
	i := slices.Index(sc.Args, flag)
	if i < 0 {
		return "", false
	}
	if i+1 >= len(sc.Args) {
		t.Fatalf("%s without a value in %q", flag, sc.Args)
	}
	if slices.Contains(sc.Args[i+1:], flag) {
		t.Fatalf("%s given twice in %q", flag, sc.Args)
	}
	return sc.Args[i+1], true
}

// TestProxyConfigConcurrency: meshConfig.defaultConfig with the pod's
// proxy.istio.io/config annotation over it (Istio's
// mesh.MergeProxyConfig) gives the proxy's --concurrency; a field the
// injector does not apply, or an annotation it cannot parse, is an
// error naming the annotation.
func TestProxyConfigConcurrency(t *testing.T) {
	mesh4 := &meshv1alpha1.ProxyConfig{Concurrency: wrapperspb.Int32(4), DiscoveryAddress: "istiod.istio-system.svc:15012",
		HoldApplicationUntilProxyStarts: wrapperspb.Bool(true), ProxyMetadata: map[string]string{"SECRET_TTL": "1h"}}
	for _, c := range []struct {
		name       string
		mesh       *meshv1alpha1.ProxyConfig
		annotation *string
		want       string // "": no --concurrency
		err        []string
	}{
		{name: "no annotation, no mesh config"},
		{name: "mesh without concurrency", mesh: &meshv1alpha1.ProxyConfig{DiscoveryAddress: "x:15012"}},
		// The mesh's other defaultConfig fields are the control plane's:
		// not rejected here.
		{name: "mesh default", mesh: mesh4, want: "4"},
		{name: "mesh default 0 (every core)", mesh: &meshv1alpha1.ProxyConfig{Concurrency: wrapperspb.Int32(0)}, want: "0"},
		{name: "annotation overrides mesh", mesh: mesh4, annotation: ptr("concurrency: 1"), want: "1"},
		{name: "annotation 0 overrides mesh", mesh: mesh4, annotation: ptr("concurrency: 0"), want: "0"},
		{name: "annotation without mesh", annotation: ptr("concurrency: 3"), want: "3"},
		{name: "JSON form", mesh: mesh4, annotation: ptr(`{"concurrency": 2}`), want: "2"},
		{name: "empty annotation keeps mesh", mesh: mesh4, annotation: ptr(""), want: "4"},
		{name: "empty mapping keeps mesh", mesh: mesh4, annotation: ptr("{}"), want: "4"},
		{name: "bad YAML", mesh: mesh4, annotation: ptr("concurrency: [1"), err: []string{AnnotationProxyConfig, "invalid YAML"}},
		{name: "not a mapping", annotation: ptr("- concurrency: 1"), err: []string{AnnotationProxyConfig, "mapping"}},
		{name: "wrong type", annotation: ptr("concurrency: many"), err: []string{AnnotationProxyConfig, `"many"`}},
		{name: "unknown field", annotation: ptr("concurrancy: 1"), err: []string{AnnotationProxyConfig, "concurrancy"}},
		{name: "unsupported field", mesh: mesh4, annotation: ptr("holdApplicationUntilProxyStarts: true"),
			err: []string{AnnotationProxyConfig, "holdApplicationUntilProxyStarts", "not supported"}},
		{name: "unsupported fields named by JSON name, with concurrency", annotation: ptr("concurrency: 1\nproxy_metadata: {A: b}\ndrainDuration: 5s"),
			err: []string{AnnotationProxyConfig, "drainDuration, proxyMetadata not supported"}},
		{name: "negative in annotation", mesh: mesh4, annotation: ptr("concurrency: -1"), err: []string{"annotation " + AnnotationProxyConfig, "concurrency -1"}},
		{name: "negative in mesh", mesh: &meshv1alpha1.ProxyConfig{Concurrency: wrapperspb.Int32(-2)}, err: []string{"meshConfig defaultConfig", "concurrency -2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pod := testPod()
			if c.annotation != nil {
				pod.Annotations[AnnotationProxyConfig] = *c.annotation
			}
			cfg := testConfig
			cfg.ProxyConfig = c.mesh
			before := proto.Clone(c.mesh)
			out, err := Inject(pod, "bookinfo", cfg)
			if !proto.Equal(before, c.mesh) {
				t.Errorf("the mesh's ProxyConfig was modified: %v", c.mesh)
			}
			if c.err != nil {
				if err == nil {
					t.Fatalf("injected; want an error naming %q", c.err)
				}
				for _, w := range c.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := proxyArg(t, out, "--concurrency")
			if got != c.want || ok != (c.want != "") {
				t.Errorf("--concurrency %q (given %v), want %q", got, ok, c.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }
