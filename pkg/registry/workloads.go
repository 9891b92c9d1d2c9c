package registry

import (
	"maps"
	"sort"

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
	// postingKeys are its labels as posting list keys.
	postingKeys []string
}

// workloadIndex indexes WorkloadEntries by namespace, then by label pair,
// so a selector finds its entries by intersecting posting lists instead of
// testing every entry (Istio's serviceentry controller indexes workloads
// by namespace, controller.go buildCollections; the label postings are
// sluice's). Namespaces are immutable once built: a derived index shares
// the ones no change touched.
type workloadIndex struct {
	byNS map[string]*nsWorkloads
}

type nsWorkloads struct {
	byName map[string]*workload
	// postings lists, per "key\x00value", the entries with that label, in
	// resource order (the order Build has always added endpoints in).
	postings map[string][]*workload
}

func newWorkload(res *config.Resource, spec *networking.WorkloadEntry) *workload {
	w := &workload{res: res, spec: spec, labels: mergedLabels(res.Labels, spec.Labels)}
	w.postingKeys = make([]string, 0, len(w.labels))
	for k, v := range w.labels {
		w.postingKeys = append(w.postingKeys, k+"\x00"+v)
	}
	return w
}

func workloadEntry(res *config.Resource) (*networking.WorkloadEntry, bool) {
	spec, ok := res.Spec.(*networking.WorkloadEntry)
	return spec, ok && res.Kind == config.KindWorkloadEntry
}

func newWorkloadIndex(resources []*config.Resource) *workloadIndex {
	wi := &workloadIndex{byNS: map[string]*nsWorkloads{}}
	for _, res := range resources {
		if spec, ok := workloadEntry(res); ok {
			wi.namespace(res.Namespace).add(newWorkload(res, spec))
		}
	}
	return wi
}

// deriveWorkloadIndex is newWorkloadIndex(resources) sharing prev's
// namespaces without a changed WorkloadEntry. A namespace with one is
// copied and edited: the changed entries leave and re-enter the posting
// lists of their old and new labels, every other list shared. Posting
// lists keep resource order, which for resources sorted by
// config.SortResources (as filesource gives them) is name order within a
// namespace; unsorted resources rebuild the namespaces with changes.
func deriveWorkloadIndex(prev *workloadIndex, resources []*config.Resource, changed map[config.Key]struct{}, cur changedSet) *workloadIndex {
	dirty := map[string][]string{} // namespace -> changed entry names
	for k := range changed {
		if k.Kind == config.KindWorkloadEntry {
			dirty[k.Namespace] = append(dirty[k.Namespace], k.Name)
		}
	}
	wi := &workloadIndex{byNS: make(map[string]*nsWorkloads, len(prev.byNS))}
	for ns, nw := range prev.byNS {
		if dirty[ns] == nil {
			wi.byNS[ns] = nw
		}
	}
	if len(dirty) == 0 {
		return wi
	}
	if !cur.sorted {
		rebuildNamespaces(wi, prev, resources, changed, dirty)
		return wi
	}
	for ns, names := range dirty {
		nw := &nsWorkloads{byName: map[string]*workload{}, postings: map[string][]*workload{}}
		if old := prev.byNS[ns]; old != nil {
			nw.byName, nw.postings = maps.Clone(old.byName), maps.Clone(old.postings)
		}
		for _, name := range names {
			var w *workload
			if res := cur.res[config.Key{Kind: config.KindWorkloadEntry, Namespace: ns, Name: name}]; res != nil {
				if spec, ok := workloadEntry(res); ok {
					w = newWorkload(res, spec)
				}
			}
			nw.replace(name, w)
		}
		if len(nw.byName) > 0 {
			wi.byNS[ns] = nw
		}
	}
	return wi
}

// changedSet are the current versions of the changed resources (absent:
// removed), and whether the WorkloadEntries are in (namespace, name)
// order, as config.SortResources leaves them.
type changedSet struct {
	res    map[config.Key]*config.Resource
	sorted bool
}

func findChanged(resources []*config.Resource, changed map[config.Key]struct{}) changedSet {
	cs := changedSet{res: make(map[config.Key]*config.Resource, len(changed)), sorted: true}
	var last *config.Resource
	for _, res := range resources {
		switch res.Kind {
		case config.KindWorkloadEntry:
			if last != nil && (res.Namespace < last.Namespace || (res.Namespace == last.Namespace && res.Name <= last.Name)) {
				cs.sorted = false
			}
			last = res
		case config.KindService, config.KindServiceEntry, config.KindEndpointSlice, config.KindPod, config.KindNode:
		default:
			continue
		}
		if _, ok := changed[res.Key()]; ok {
			cs.res[res.Key()] = res
		}
	}
	return cs
}

// replace takes entry name out of the namespace's index and puts w (nil:
// none) in, copying the posting lists it edits (they may be shared).
func (nw *nsWorkloads) replace(name string, w *workload) {
	if old := nw.byName[name]; old != nil {
		delete(nw.byName, name)
		for _, k := range old.postingKeys {
			list := make([]*workload, 0, len(nw.postings[k]))
			for _, o := range nw.postings[k] {
				if o != old {
					list = append(list, o)
				}
			}
			if len(list) == 0 {
				delete(nw.postings, k)
			} else {
				nw.postings[k] = list
			}
		}
	}
	if w == nil {
		return
	}
	nw.byName[name] = w
	for _, k := range w.postingKeys {
		old := nw.postings[k]
		i := sort.Search(len(old), func(i int) bool { return old[i].res.Name > name })
		list := make([]*workload, 0, len(old)+1)
		list = append(append(append(list, old[:i]...), w), old[i:]...)
		nw.postings[k] = list
	}
}

// rebuildNamespaces indexes the dirty namespaces from resources, reusing
// prev's entries that did not change.
func rebuildNamespaces(wi, prev *workloadIndex, resources []*config.Resource, changed map[config.Key]struct{}, dirty map[string][]string) {
	for _, res := range resources {
		if dirty[res.Namespace] == nil {
			continue
		}
		spec, ok := workloadEntry(res)
		if !ok {
			continue
		}
		w := prev.get(res.Namespace, res.Name)
		if _, edited := changed[res.Key()]; edited || w == nil {
			w = newWorkload(res, spec)
		}
		wi.namespace(res.Namespace).add(w)
	}
}

func (wi *workloadIndex) namespace(ns string) *nsWorkloads {
	nw := wi.byNS[ns]
	if nw == nil {
		nw = &nsWorkloads{byName: map[string]*workload{}, postings: map[string][]*workload{}}
		wi.byNS[ns] = nw
	}
	return nw
}

func (nw *nsWorkloads) add(w *workload) {
	nw.byName[w.res.Name] = w
	for _, k := range w.postingKeys {
		nw.postings[k] = append(nw.postings[k], w)
	}
}

// get returns the WorkloadEntry ns/name, or nil.
func (wi *workloadIndex) get(ns, name string) *workload {
	if nw := wi.byNS[ns]; nw != nil {
		return nw.byName[name]
	}
	return nil
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
