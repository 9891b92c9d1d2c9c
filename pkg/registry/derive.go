package registry

import (
	"maps"
	"slices"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Derive builds the registry of resources from prev, the registry built
// from the previous resources, and changed, the keys of the resources
// added, changed or removed since (filesource's Snapshot.Changed). The
// result equals Build(resources, the options prev was built with); what
// the change did not touch is shared with prev by pointer: services,
// their endpoint lists, and, when no Service or ServiceEntry changed, the
// service list itself. Only the sources whose selector matches a changed
// WorkloadEntry's old or new labels, the Services whose EndpointSlices
// name a changed slice, Pod or Node (before or after), and the changed
// Services and ServiceEntries, are read again (Istio's serviceentry controller updates
// its services and endpoint shards the same way per event). prev nil
// builds from scratch.
func Derive(prev *Registry, resources []*config.Resource, changed map[config.Key]struct{}) *Registry {
	if prev == nil || prev.sources == nil {
		return Build(resources, BuildOptions{})
	}
	cur := findChanged(resources, changed)
	wi := deriveWorkloadIndex(prev.workloads, resources, changed, cur)
	ki := prev.kube
	for k := range changed {
		if isKubeKind(k.Kind) {
			ki = deriveKubeIndex(prev.kube, changed, cur)
			break
		}
	}
	touched := prev.touched(changed, wi, ki)
	if r, ok := prev.derivePatched(wi, ki, touched, changed, cur); ok {
		return r
	}
	r := newRegistry(prev.opts, wi)
	r.kube = ki
	dirty := map[hostNS]bool{}
	for key := range touched {
		if old := prev.sources[key]; old != nil {
			markDirty(dirty, old)
		}
	}
	for _, res := range resources {
		key := res.Key()
		old := prev.sources[key]
		if old != nil && !touched[key] {
			r.addSource(old)
			continue
		}
		src := newSource(res, wi, ki, prev.opts)
		if src == nil {
			continue
		}
		if _, edited := changed[key]; !edited && old != nil && len(old.services) == len(src.services) {
			// Only its WorkloadEntries moved: the services are the same.
			src.services = old.services
		}
		markDirty(dirty, src)
		r.addSource(src)
	}
	r.mergeEndpoints(prev, dirty)
	r.finish()
	return r
}

// touched lists the sources a change makes the registry read again: the
// changed Services and ServiceEntries, and those selecting a changed
// WorkloadEntry by its old labels (in prev) or its new ones (in wi).
func (prev *Registry) touched(changed map[config.Key]struct{}, wi *workloadIndex, ki *kubeIndex) map[config.Key]bool {
	touched := map[config.Key]bool{}
	for key := range changed {
		if isKubeKind(key.Kind) {
			// The Services whose slices named the object before the
			// change or name it now (a slice by its old and new
			// service-name label; a Pod by the slices naming it; a Node
			// by the Pods on it). A Service that did not exist and did
			// not change does not exist now.
			for _, sk := range append(prev.kube.servicesNaming(key), ki.servicesNaming(key)...) {
				if prev.sources[sk] != nil {
					touched[sk] = true
				}
			}
			continue
		}
		switch key.Kind {
		case config.KindService, config.KindServiceEntry:
			touched[key] = true
		case config.KindWorkloadEntry:
			for _, w := range []*workload{prev.workloads.get(key.Namespace, key.Name), wi.get(key.Namespace, key.Name)} {
				if w == nil {
					continue
				}
				for _, sk := range prev.sourcesSelecting(key.Namespace, w.labels) {
					touched[sk] = true
				}
			}
		}
	}
	return touched
}

// derivePatched is Derive when every touched source existed and still
// declares the same hostnames (WorkloadEntries moved, or a Service or
// ServiceEntry changed ports, selector, addresses...): the service list
// keeps its order with the changed services swapped in, and only the
// endpoint lists of touched hostnames are merged again. ok is false when
// a source was added, removed or changed its hostnames.
func (prev *Registry) derivePatched(wi *workloadIndex, ki *kubeIndex, touched map[config.Key]bool, changed map[config.Key]struct{}, cur changedSet) (*Registry, bool) {
	r := &Registry{services: prev.services, byHost: prev.byHost, opts: prev.opts, workloads: wi, kube: ki,
		hostSources: prev.hostSources, selectors: prev.selectors, sources: maps.Clone(prev.sources)}
	replaced := map[*Service]*Service{}
	dirty := map[hostNS]bool{}
	for key := range touched {
		old, res := prev.sources[key], cur.res[key]
		_, edited := changed[key]
		if old == nil || (edited && res == nil) {
			return nil, false
		}
		if !edited {
			res = old.res
		}
		src := newSource(res, wi, ki, prev.opts)
		if src == nil || !sameHosts(old, src) {
			return nil, false
		}
		if edited {
			for i, svc := range src.services {
				replaced[old.services[i]] = svc
			}
			if !maps.Equal(old.selector, src.selector) {
				r.moveSelector(key, old.selector, src.selector)
			}
		} else {
			src.services = old.services
		}
		r.sources[key] = src
		markDirty(dirty, src)
	}
	if len(replaced) > 0 {
		r.swapServices(replaced, dirty)
	}
	r.endpoints = maps.Clone(prev.endpoints)
	for k := range dirty {
		for _, svc := range prev.byHost[k.host] {
			if svc.Namespace != k.namespace {
				continue
			}
			for _, p := range svc.Ports {
				delete(r.endpoints, endpointKey{host: k.host, namespace: k.namespace, port: p.Number})
			}
		}
		r.mergeHost(k, r.hostSources[k])
	}
	return r, true
}

// sameHosts says two versions of a source declare the same hostnames in
// the same order (the namespace is the key's).
func sameHosts(a, b *source) bool {
	if len(a.services) != len(b.services) {
		return false
	}
	for i := range a.services {
		if a.services[i].Hostname != b.services[i].Hostname {
			return false
		}
	}
	return true
}

// swapServices replaces services in r's service list and hostname index,
// copying what it edits (prev's are shared). Hostnames and namespaces are
// the same, so both orders hold.
func (r *Registry) swapServices(replaced map[*Service]*Service, dirty map[hostNS]bool) {
	r.services = slices.Clone(r.services)
	for i, svc := range r.services {
		if n, ok := replaced[svc]; ok {
			r.services[i] = n
		}
	}
	r.byHost = maps.Clone(r.byHost)
	for k := range dirty {
		list := slices.Clone(r.byHost[k.host])
		for i, svc := range list {
			if n, ok := replaced[svc]; ok {
				list[i] = n
			}
		}
		r.byHost[k.host] = list
	}
}

// moveSelector re-indexes source key from its old selector to its new
// one, copying the namespace's index (prev's is shared).
func (r *Registry) moveSelector(key config.Key, old, sel map[string]string) {
	selectors := maps.Clone(r.selectors)
	byPair := maps.Clone(selectors[key.Namespace])
	if byPair == nil {
		byPair = map[string][]config.Key{}
	}
	if len(old) > 0 {
		pair := selectorPair(old)
		list := slices.DeleteFunc(slices.Clone(byPair[pair]), func(k config.Key) bool { return k == key })
		if len(list) == 0 {
			delete(byPair, pair)
		} else {
			byPair[pair] = list
		}
	}
	if len(sel) > 0 {
		pair := selectorPair(sel)
		byPair[pair] = append(slices.Clone(byPair[pair]), key)
	}
	selectors[key.Namespace] = byPair
	r.selectors = selectors
}

func markDirty(dirty map[hostNS]bool, src *source) {
	for _, svc := range src.services {
		dirty[hostNS{host: svc.Hostname, namespace: svc.Namespace}] = true
	}
}
