package analysis

import (
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Kubernetes kinds analysis reads. Pods and Nodes are pkg/config's kinds
// (config.KindPod, config.KindNode: Spec the whole *corev1.Pod or
// *corev1.Node); a Deployment's Spec is its *appsv1.DeploymentSpec.
const (
	KindPod        config.Kind = "Pod"
	KindDeployment config.Kind = "Deployment"
	KindNode       config.Kind = "Node"
)

// Object is one loaded resource and where it was read.
type Object struct {
	*config.Resource
	Origin Origin
	// fields maps a field path such as "{.spec.gateways[0]}" to its line,
	// as Istio's BuildFieldPathMap (pilot/pkg/config/file/store.go).
	fields map[string]int
}

// Ref is the message reference to o.
func (o *Object) Ref() ResourceRef {
	return ResourceRef{Kind: string(o.Kind), Namespace: o.Namespace, Name: o.Name}
}

// FullName is o's "ns/name" (or "name").
func (o *Object) FullName() string { return o.Ref().FullName() }

// Snapshot is the configuration one analysis runs over. It is immutable
// once built.
type Snapshot struct {
	objects []*Object
	byKind  map[config.Kind][]*Object
	byKey   map[config.Key]*Object
	// Mesh is the mesh config (Default when none was given).
	Mesh *meshv1alpha1.MeshConfig
	// Registry is the service registry pkg/registry builds from the
	// snapshot's mesh resources, as the control plane's push does. The
	// Istio ports look services up as Istio's analyzers do
	// (serviceEntryHosts); it is there for sluice's own checks (issue 13,
	// point 2).
	Registry *registry.Registry
	// Errors are the documents that could not be read.
	Errors config.Errors
	// Skipped describes documents of kinds analysis does not read.
	Skipped []string
	// SkippedFiles are the files not read for their extension.
	SkippedFiles []string
}

// HasWorkloads reports whether the input holds Kubernetes workload objects
// (Pods, Deployments) besides the default ingress gateway: sluice's local
// mode has none, its workloads being WorkloadEntries.
func (s *Snapshot) HasWorkloads() bool {
	for _, kind := range []config.Kind{KindPod, KindDeployment} {
		for _, o := range s.byKind[kind] {
			if o.Origin.File != internalIngressFile {
				return true
			}
		}
	}
	return false
}

// NewSnapshot indexes objects, in the order given.
func NewSnapshot(objects []*Object, mesh *meshv1alpha1.MeshConfig) *Snapshot {
	s := &Snapshot{byKind: map[config.Kind][]*Object{}, byKey: map[config.Key]*Object{}, Mesh: mesh}
	var resources []*config.Resource
	for _, o := range objects {
		if _, dup := s.byKey[o.Key()]; dup {
			continue // a second definition of one resource is ignored
		}
		s.objects = append(s.objects, o)
		s.byKind[o.Kind] = append(s.byKind[o.Kind], o)
		s.byKey[o.Key()] = o
		resources = append(resources, o.Resource)
	}
	s.Registry = registry.Build(resources, registry.BuildOptions{})
	return s
}

// Objects returns every object of kind, in load order.
func (s *Snapshot) Objects(kind config.Kind) []*Object { return s.byKind[kind] }

// Find returns the object of kind named ns/name, or nil.
func (s *Snapshot) Find(kind config.Kind, ns, name string) *Object {
	return s.byKey[config.Key{Kind: kind, Namespace: ns, Name: name}]
}

// All returns every object, in load order.
func (s *Snapshot) All() []*Object { return s.objects }
