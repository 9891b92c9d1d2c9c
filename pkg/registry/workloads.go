package registry

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// workload is one WorkloadEntry as selectors see it: its labels (metadata
// labels overlaid by spec labels, as Istio merges them) computed once and
// shared by every endpoint made from it.
type workload struct {
	res    *config.Resource
	spec   *networking.WorkloadEntry
	labels map[string]string
	// pos is the entry's place in its namespace, in resource order: the
	// order Build has always added endpoints in.
	pos int
}

// workloadIndex indexes WorkloadEntries by namespace, then by label pair,
// so a selector finds its entries by intersecting posting lists instead of
// testing every entry (Istio keeps the same index per namespace in its
// serviceentry controller's workloadInstancesIndex).
type workloadIndex struct {
	byNS  map[string]*nsWorkloads
	byKey map[config.Key]*workload
}

type nsWorkloads struct {
	all []*workload
	// postings lists, per "key\x00value", the entries with that label, in
	// pos order.
	postings map[string][]*workload
}

func newWorkloadIndex(resources []*config.Resource) *workloadIndex {
	wi := &workloadIndex{byNS: map[string]*nsWorkloads{}, byKey: map[config.Key]*workload{}}
	for _, res := range resources {
		spec, ok := res.Spec.(*networking.WorkloadEntry)
		if !ok || res.Kind != config.KindWorkloadEntry {
			continue
		}
		ns := wi.byNS[res.Namespace]
		if ns == nil {
			ns = &nsWorkloads{postings: map[string][]*workload{}}
			wi.byNS[res.Namespace] = ns
		}
		w := &workload{res: res, spec: spec, labels: mergedLabels(res.Labels, spec.Labels), pos: len(ns.all)}
		ns.all = append(ns.all, w)
		for k, v := range w.labels {
			ns.postings[k+"\x00"+v] = append(ns.postings[k+"\x00"+v], w)
		}
		wi.byKey[res.Key()] = w
	}
	return wi
}

// selected returns the entries of namespace ns whose labels contain every
// pair of selector, in resource order. An empty selector selects none
// (a Service without selector has no WorkloadEntry endpoints).
func (wi *workloadIndex) selected(ns string, selector map[string]string) []*workload {
	nw := wi.byNS[ns]
	if nw == nil || len(selector) == 0 {
		return nil
	}
	var shortest []*workload
	first := true
	for k, v := range selector {
		list, ok := nw.postings[k+"\x00"+v]
		if !ok {
			return nil
		}
		if first || len(list) < len(shortest) {
			shortest, first = list, false
		}
	}
	var out []*workload
	for _, w := range shortest {
		if LabelsMatch(selector, w.labels) {
			out = append(out, w)
		}
	}
	return out
}
