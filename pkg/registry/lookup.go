package registry

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// ServicesOf returns the services the Service or ServiceEntry key
// declares, nil when it declares none.
func (r *Registry) ServicesOf(key config.Key) []*Service {
	if src := r.sources[key]; src != nil {
		return src.services
	}
	return nil
}

// ServicesSelecting returns the services whose workload selector (a
// Kubernetes Service's selector, a ServiceEntry's workloadSelector) takes
// a WorkloadEntry of namespace ns with labels, in resource order.
func (r *Registry) ServicesSelecting(ns string, labels map[string]string) []*Service {
	var out []*Service
	for _, key := range r.selectors[ns] {
		if src := r.sources[key]; LabelsMatch(src.selector, labels) {
			out = append(out, src.services...)
		}
	}
	return out
}

// WorkloadLabels are the labels selectors see on a WorkloadEntry: its
// metadata labels overlaid by its spec labels; nil for other kinds.
func WorkloadLabels(res *config.Resource) map[string]string {
	spec, ok := res.Spec.(*networking.WorkloadEntry)
	if !ok {
		return nil
	}
	return mergedLabels(res.Labels, spec.Labels)
}
