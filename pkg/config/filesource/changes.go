package filesource

import (
	"maps"
	"reflect"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Changed returns the keys of the resources added, removed or changed
// from prev to s (Istio's PushRequest.ConfigsUpdated), judged by content,
// not by file: a resource moved to another file, or a file rewritten with
// the same resources, changes nothing; a spec, a label or an annotation
// (networking.istio.io/exportTo among them) or the creation order does.
func (s Snapshot) Changed(prev Snapshot) map[config.Key]struct{} {
	return ChangedResources(prev.Resources, s.Resources)
}

// ChangedResources is Changed over two resource lists.
func ChangedResources(prev, cur []*config.Resource) map[config.Key]struct{} {
	old := make(map[config.Key]*config.Resource, len(prev))
	for _, r := range prev {
		old[r.Key()] = r
	}
	out := map[config.Key]struct{}{}
	for _, r := range cur {
		k := r.Key()
		if o, ok := old[k]; !ok || !SameResource(o, r) {
			out[k] = struct{}{}
		}
		delete(old, k)
	}
	for k := range old {
		out[k] = struct{}{}
	}
	return out
}

// SameResource reports whether a and b, two versions of one key, would
// configure the mesh the same: same kind and API version, labels,
// annotations, creation order (the oldest wins a conflict), and spec
// (proto.Equal for Istio's types, reflect.DeepEqual for Kubernetes',
// Gateway API's and Secrets). Where each came from (file, document) does
// not count.
func SameResource(a, b *config.Resource) bool {
	if a == b {
		return true
	}
	if a.Kind != b.Kind || a.APIVersion != b.APIVersion || a.Created != b.Created ||
		!maps.Equal(a.Labels, b.Labels) || !maps.Equal(a.Annotations, b.Annotations) {
		return false
	}
	if pa, ok := a.Spec.(proto.Message); ok {
		pb, ok := b.Spec.(proto.Message)
		return ok && proto.Equal(pa, pb)
	}
	return reflect.DeepEqual(a.Spec, b.Spec)
}
