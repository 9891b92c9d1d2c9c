package analysis

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// registryServices returns the registry's services for host as namespace
// ns sees it: short names are qualified with ns, and only services
// exported to ns are kept (sluice's own checks use the registry the
// control plane pushes from).
func registryServices(c *Context, ns, host string) []*registry.Service {
	var out []*registry.Service
	for _, svc := range c.Registry.ServicesForHost(convertHostToFQDN(ns, host)) {
		if svc.VisibleTo(ns) {
			out = append(out, svc)
		}
	}
	return out
}

// endpointLabels returns the label sets of svc's current endpoints: its
// registry endpoints on every port (WorkloadEntries, ServiceEntry
// endpoints) and, for a Kubernetes Service, the pods its selector
// selects. It is nil for a service whose endpoints come from DNS or the
// original destination (no labels to select).
func endpointLabels(c *Context, svc *registry.Service) (labels []map[string]string, known bool) {
	seen := map[string]bool{}
	for _, p := range svc.Ports {
		for _, ep := range c.Registry.Endpoints(svc, p.Number) {
			if ep.Workload == svc.Namespace+"/"+svc.Source.Name && svc.Source.Kind == config.KindServiceEntry && ep.Labels == nil {
				return nil, false // a DNS host resolving itself
			}
			if !seen[ep.Workload] {
				seen[ep.Workload] = true
				labels = append(labels, ep.Labels)
			}
		}
	}
	src := c.Find(svc.Source.Kind, svc.Source.Namespace, svc.Source.Name)
	if src == nil {
		return labels, true
	}
	if spec, ok := src.Spec.(*corev1.ServiceSpec); ok && src.Kind == config.KindService {
		if len(spec.Selector) == 0 {
			return nil, false // endpoints managed outside the mesh config
		}
		for _, pod := range c.Objects(KindPod) {
			if pod.Namespace == src.Namespace && selects(spec.Selector, pod.Labels) {
				labels = append(labels, pod.Labels)
			}
		}
	}
	if svc.Source.Kind == config.KindServiceEntry && svc.Resolution == registry.ResolutionNone && len(labels) == 0 {
		return nil, false // passthrough to the original destination
	}
	return labels, true
}
