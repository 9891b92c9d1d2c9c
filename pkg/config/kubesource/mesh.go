package kubesource

import (
	"fmt"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// MeshKey is the ConfigMap key holding the MeshConfig, as istiod's
// (pkg/config/mesh/kubemesh: MeshConfigKey).
const MeshKey = "mesh"

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// newMeshInformer watches the one MeshConfig ConfigMap.
func (s *Source) newMeshInformer() cache.SharedIndexInformer {
	sel := fields.OneTermEqualSelector("metadata.name", s.opts.MeshConfigMap).String()
	tweak := func(o *metav1.ListOptions) { o.FieldSelector = sel }
	inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, configMaps, s.opts.MeshNamespace, 0, cache.Indexers{}, tweak).Informer()
	s.configure(inf, "configmap "+s.opts.MeshNamespace+"/"+s.opts.MeshConfigMap, s.meshChanged, s.meshDeleted)
	return inf
}

// meshChanged reads the ConfigMap's mesh key. An invalid MeshConfig is an
// error in the snapshot and the last good one stays.
func (s *Source) meshChanged(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	s.mu.Lock()
	same := s.mesh.rv == u.GetResourceVersion()
	s.mu.Unlock()
	if same {
		return
	}
	name := fmt.Sprintf("ConfigMap %s/%s key %s", u.GetNamespace(), u.GetName(), MeshKey)
	var cm corev1.ConfigMap
	err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cm)
	var mc *meshv1alpha1.MeshConfig
	if err == nil {
		mc, err = meshconfig.Parse([]byte(cm.Data[MeshKey]), name)
	}
	s.mu.Lock()
	s.mesh.rv = u.GetResourceVersion()
	if err != nil {
		s.mesh.err = &config.Error{Source: config.Source{File: SourceName}, Err: fmt.Errorf("%w; the last good MeshConfig stays in force", err)}
		s.opts.Logf("config: %v", s.mesh.err)
	} else {
		s.mesh.good, s.mesh.err = mc, nil
	}
	s.dirty = true
	s.mu.Unlock()
	s.signal()
}

// meshDeleted forgets the cluster's MeshConfig: the control plane goes
// back to its own (--mesh-config or defaults).
func (s *Source) meshDeleted(any) {
	s.mu.Lock()
	s.mesh = meshState{}
	s.dirty = true
	s.mu.Unlock()
	s.signal()
}
