package inject

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// AnnotationProxyConfig is Istio's per-pod ProxyConfig
// (annotation.ProxyConfig): YAML or JSON of a mesh v1alpha1 ProxyConfig
// merged over meshConfig.defaultConfig (Istio's injector:
// mesh.ApplyProxyConfig in pkg/kube/inject/inject.go and webhook.go).
const AnnotationProxyConfig = "proxy.istio.io/config"

// annotatedProxyFields are the ProxyConfig fields (JSON names) the
// injected proxy applies when the annotation sets them. Istio's agent
// reads the rest (drain durations, holdApplicationUntilProxyStarts,
// tracing, proxyMetadata...) from the annotation in the pod; sluice's
// proxy and control plane do not, so the annotation setting any other
// field is an injection error rather than a pod that silently runs
// without it.
var annotatedProxyFields = []string{"concurrency"}

// proxyConfig is the pod's effective ProxyConfig: the mesh's
// defaultConfig (mesh, may be nil) with the pod's proxy.istio.io/config
// annotation's fields over it, as Istio's mesh.MergeProxyConfig. The
// mesh's fields are not checked here: the mesh config is validated when
// loaded and the control plane consumes its defaultConfig.
func proxyConfig(pod *corev1.Pod, mesh *meshv1alpha1.ProxyConfig) (*meshv1alpha1.ProxyConfig, error) {
	pc := &meshv1alpha1.ProxyConfig{}
	if mesh != nil {
		pc = proto.Clone(mesh).(*meshv1alpha1.ProxyConfig)
	}
	src := "meshConfig defaultConfig"
	if v, ok := pod.Annotations[AnnotationProxyConfig]; ok {
		ann, err := meshconfig.ParseProxyConfig([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationProxyConfig, err)
		}
		var unsupported []string
		ann.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if !slices.Contains(annotatedProxyFields, fd.JSONName()) {
				unsupported = append(unsupported, fd.JSONName())
			}
			return true
		})
		if len(unsupported) > 0 {
			slices.Sort(unsupported)
			return nil, fmt.Errorf("annotation %s: %s not supported by sluice's injector (it applies %s)",
				AnnotationProxyConfig, strings.Join(unsupported, ", "), strings.Join(annotatedProxyFields, ", "))
		}
		// The fields honoured are wrappers and scalars, which Istio's
		// decoding over the default replaces (an annotated concurrency
		// of 0 wins over the mesh's 4): set, not proto.Merge, which
		// would keep the mesh's value under a wrapper holding 0.
		dst := pc.ProtoReflect()
		ann.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			dst.Set(fd, v)
			return true
		})
		if ann.GetConcurrency() != nil {
			src = "annotation " + AnnotationProxyConfig
		}
	}
	if c := pc.GetConcurrency(); c != nil && c.GetValue() < 0 {
		return nil, fmt.Errorf("%s: concurrency %d: must be 0 (every core) or more", src, c.GetValue())
	}
	return pc, nil
}

// concurrencyArgs is `--concurrency N` when the effective ProxyConfig
// sets concurrency (Istio's agent passes Envoy --concurrency from
// ProxyConfig.concurrency, pkg/envoy/proxy.go); none otherwise, where
// the proxy's own default (Istio's 2) applies.
func concurrencyArgs(pc *meshv1alpha1.ProxyConfig) []string {
	if c := pc.GetConcurrency(); c != nil {
		return []string{"--concurrency", fmt.Sprint(c.GetValue())}
	}
	return nil
}
