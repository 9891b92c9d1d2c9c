package xdsgen

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
)

// The Kubernetes Services a Pod backs, as istiod finds them for the
// workload API (ambient/workloads.go podWorkloadBuilder: the Services of
// its namespace whose selector matches its labels, ready or not, then
// constructServices): the registry's EndpointSlices list only ready
// endpoints, and a Pod that is not ready is still a workload of its
// Services (UNHEALTHY), which ztunnel must know. Services without a
// selector come from the registry (their EndpointSlices), as istiod's
// matchingServicesWithoutSelectors.

// selectorService is a Kubernetes Service with a selector.
type selectorService struct {
	svc  *registry.Service
	spec *corev1.ServiceSpec
}

// indexSelectorServices lists, per namespace, the registry's Kubernetes
// Services that have a selector.
func (b *workloadBuilder) indexSelectorServices() map[string][]selectorService {
	out := map[string][]selectorService{}
	for _, svc := range b.push.Services() {
		if svc.Source.Kind != config.KindService {
			continue
		}
		res := b.push.Resource(svc.Source)
		if res == nil {
			continue
		}
		if spec, ok := res.Spec.(*corev1.ServiceSpec); ok && len(spec.Selector) > 0 {
			out[svc.Namespace] = append(out[svc.Namespace], selectorService{svc: svc, spec: spec})
		}
	}
	return out
}

// podServices merges the selector Services matching the Pod (ports as
// constructServices resolves them) with the registry's memberships of its
// addresses.
func (b *workloadBuilder) podServices(r *config.Resource, pod *corev1.Pod, ips []string) map[string]*workloadapi.PortList {
	out := b.servicesOf(r.Namespace+"/"+r.Name, ips...)
	for _, s := range b.selectorServices[r.Namespace] {
		if !registry.LabelsMatch(s.spec.Selector, r.Labels) {
			continue
		}
		pl := &workloadapi.PortList{Ports: make([]*workloadapi.Port, 0, len(s.spec.Ports))}
		for _, p := range s.spec.Ports {
			target := uint32(p.TargetPort.IntValue())
			if name := p.TargetPort.StrVal; name != "" {
				tp, ok := findPortName(pod, name)
				if !ok {
					continue // the Pod does not have the port: left out, as istiod
				}
				target = uint32(tp)
			} else if target == 0 {
				target = uint32(p.Port) // the API server's default targetPort
			}
			pl.Ports = append(pl.Ports, &workloadapi.Port{ServicePort: uint32(p.Port), TargetPort: target})
		}
		sortPorts(pl.Ports)
		out[s.svc.Namespace+"/"+s.svc.Hostname] = pl
	}
	return out
}

// findPortName is istiod's FindPortName: a TCP container port by name,
// in containers and native sidecars (init containers restarting Always).
// A port written without a protocol is TCP (the API server's default).
func findPortName(pod *corev1.Pod, name string) (int32, bool) {
	find := func(cs []corev1.Container, sidecarsOnly bool) (int32, bool) {
		for _, c := range cs {
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == name && (p.Protocol == corev1.ProtocolTCP || p.Protocol == "") {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if p, ok := find(pod.Spec.Containers, false); ok {
		return p, true
	}
	return find(pod.Spec.InitContainers, true)
}
