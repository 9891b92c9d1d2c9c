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
// a WorkloadEntry of namespace ns with labels, in no particular order.
func (r *Registry) ServicesSelecting(ns string, labels map[string]string) []*Service {
	var out []*Service
	for _, key := range r.sourcesSelecting(ns, labels) {
		out = append(out, r.sources[key].services...)
	}
	return out
}

// sourcesSelecting are the sources of namespace ns whose selector matches
// labels: the candidates indexed under one of labels' pairs, checked.
func (r *Registry) sourcesSelecting(ns string, labels map[string]string) []config.Key {
	byPair := r.selectors[ns]
	if byPair == nil {
		return nil
	}
	var out []config.Key
	for k, v := range labels {
		for _, key := range byPair[k+"\x00"+v] {
			if LabelsMatch(r.sources[key].selector, labels) {
				out = append(out, key)
			}
		}
	}
	return out
}

// selectorPair is the pair a selector is indexed under: its smallest key
// with its value. A workload it matches has that pair, so each matching
// selector is found exactly once.
func selectorPair(sel map[string]string) string {
	first := ""
	for k := range sel {
		if first == "" || k < first {
			first = k
		}
	}
	return first + "\x00" + sel[first]
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

// ServicesFedBy returns the Kubernetes Services whose endpoints the Pod,
// Node or EndpointSlice key feeds in this registry: a slice's Service, the
// Services whose slices name a Pod, those naming a Pod on a Node. Nil for
// other kinds.
func (r *Registry) ServicesFedBy(key config.Key) []*Service {
	if !isKubeKind(key.Kind) {
		return nil
	}
	var out []*Service
	seen := map[config.Key]bool{}
	for _, sk := range r.kube.servicesNaming(key) {
		if src := r.sources[sk]; src != nil && !seen[sk] {
			seen[sk] = true
			out = append(out, src.services...)
		}
	}
	return out
}

// IsKubeEndpointKind reports whether kind only feeds Services' endpoints
// (Pod, Node, EndpointSlice): ServicesFedBy names the services it feeds.
func IsKubeEndpointKind(kind config.Kind) bool { return isKubeKind(kind) }
