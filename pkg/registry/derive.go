package registry

import (
	"github.com/sluice-mesh/sluice/pkg/config"
)

// Derive builds the registry of resources from prev, the registry built
// from the previous resources, and changed, the keys of the resources
// added, changed or removed since (filesource's Snapshot.Changed). The
// result equals Build(resources, the options prev was built with); what
// the change did not touch is shared with prev by pointer: services,
// their endpoint lists, and, when no Service or ServiceEntry changed, the
// service list itself. Only the sources whose selector matches a changed
// WorkloadEntry's old or new labels, and the changed Services and
// ServiceEntries, are read again (Istio's serviceentry controller updates
// its services and endpoint shards the same way per event). prev nil
// builds from scratch.
func Derive(prev *Registry, resources []*config.Resource, changed map[config.Key]struct{}) *Registry {
	if prev == nil || prev.sources == nil {
		return Build(resources, BuildOptions{})
	}
	wi := deriveWorkloadIndex(prev.workloads, resources, changed)
	touched, structural := prev.touched(changed, wi)
	if !structural {
		return prev.deriveEndpoints(wi, touched)
	}
	r := newRegistry(prev.opts, wi)
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
		src := newSource(res, wi, prev.opts)
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
// structural reports a Service or ServiceEntry among the changes: the
// service list itself may differ.
func (prev *Registry) touched(changed map[config.Key]struct{}, wi *workloadIndex) (map[config.Key]bool, bool) {
	touched := map[config.Key]bool{}
	structural := false
	for key := range changed {
		switch key.Kind {
		case config.KindService, config.KindServiceEntry:
			touched[key] = true
			structural = true
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
	return touched, structural
}

// deriveEndpoints is Derive when only WorkloadEntries changed: the service
// list, hostname index and every other endpoint list stay prev's.
func (prev *Registry) deriveEndpoints(wi *workloadIndex, touched map[config.Key]bool) *Registry {
	r := &Registry{services: prev.services, byHost: prev.byHost, opts: prev.opts, workloads: wi,
		hostSources: prev.hostSources, selectors: prev.selectors,
		sources:   make(map[config.Key]*source, len(prev.sources)),
		endpoints: make(map[endpointKey][]*Endpoint, len(prev.endpoints))}
	for k, src := range prev.sources {
		r.sources[k] = src
	}
	for k, list := range prev.endpoints {
		r.endpoints[k] = list
	}
	dirty := map[hostNS]bool{}
	for key := range touched {
		old := prev.sources[key]
		src := newSource(old.res, wi, prev.opts)
		src.services = old.services
		r.sources[key] = src
		markDirty(dirty, src)
	}
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
	return r
}

func markDirty(dirty map[hostNS]bool, src *source) {
	for _, svc := range src.services {
		dirty[hostNS{host: svc.Hostname, namespace: svc.Namespace}] = true
	}
}
