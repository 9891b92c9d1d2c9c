// Package config holds sluice's model of user configuration: Istio and
// Kubernetes resources decoded from YAML, with where each came from.
package config

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// Kind names a resource kind as users write it in YAML.
type Kind string

// Kinds sluice reads. Istio networking kinds decode into istio.io/api types
// (every served version, v1, v1beta1 and v1alpha3, shares one Go type).
const (
	KindVirtualService  Kind = "VirtualService"
	KindDestinationRule Kind = "DestinationRule"
	KindGateway         Kind = "Gateway"
	KindServiceEntry    Kind = "ServiceEntry"
	KindWorkloadEntry   Kind = "WorkloadEntry"
	KindSidecar         Kind = "Sidecar"
	KindService         Kind = "Service"
	KindSecret          Kind = "Secret"
	// KindPeerAuthentication is security.istio.io's (v1, v1beta1).
	KindPeerAuthentication Kind = "PeerAuthentication"
)

// Secret is a Kubernetes Secret's payload, as Gateways' credentialName
// refers to it (tls.crt, tls.key, ca.crt).
type Secret struct {
	Type string
	Data map[string][]byte
}

// Meta is the subset of Kubernetes object metadata sluice uses.
type Meta struct {
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

// KubernetesSource is Source.File of every resource read from a cluster
// (pkg/config/kubesource).
const KubernetesSource = "kubernetes"

// Source says where a resource was read from, for error messages.
type Source struct {
	// File is the path of the YAML file, or a description such as "kubernetes".
	File string
	// Doc is the 1-based index of the YAML document inside File.
	Doc int
}

func (s Source) String() string {
	if s.File == "" {
		return "<unknown>"
	}
	if s.Doc == 0 {
		return s.File
	}
	return fmt.Sprintf("%s (document %d)", s.File, s.Doc)
}

// Key identifies a resource: two resources with one Key are the same object.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Resource is one decoded configuration object. Spec holds the typed
// specification, for example *v1alpha3.VirtualService or *corev1.ServiceSpec.
// Resources are immutable once stored: code that needs a changed copy
// clones it first.
type Resource struct {
	Kind       Kind
	APIVersion string
	Meta
	Spec   any
	Source Source
	// Created orders resources as Istio orders them by creationTimestamp
	// (the oldest wins a conflict): metadata.creationTimestamp when the
	// YAML has one, else when the source first saw the resource, in Unix
	// nanoseconds. 0 means unknown.
	Created int64
}

// Key returns the identity of r.
func (r *Resource) Key() Key { return Key{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name} }

// SortResources orders resources by kind, namespace and name, the order
// every generator iterates in so output is deterministic.
func SortResources(rs []*Resource) {
	slices.SortFunc(rs, func(a, b *Resource) int { return CompareKeys(a.Key(), b.Key()) })
}

// CompareKeys orders keys by kind, namespace, then name.
func CompareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SortByCreation orders resources oldest first, as Istio breaks conflicts
// between VirtualServices or Gateways (sortConfigByCreationTime): equal
// times are ordered by name, then namespace.
func SortByCreation(rs []*Resource) {
	sort.SliceStable(rs, func(i, j int) bool { return OlderThan(rs[i], rs[j]) })
}

// OlderThan is SortByCreation's order.
func OlderThan(a, b *Resource) bool {
	if a.Created != b.Created {
		return a.Created < b.Created
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Namespace < b.Namespace
}
