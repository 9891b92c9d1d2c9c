package registry

import (
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// nsName names a namespaced object.
type nsName struct{ namespace, name string }

// kubeIndex holds the Kubernetes objects a Service's endpoints are read
// from, as Istio's kube controller holds its informers: EndpointSlices by
// the Service they belong to (label kubernetes.io/service-name), in slice
// name order, Pods and Nodes by name, and the reverse edges Derive follows
// (the Services whose slices name a Pod, once per naming endpoint; the
// Pods on a Node). Immutable once built: deriveKubeIndex copies what a
// change edits.
type kubeIndex struct {
	slices      map[nsName][]namedSlice
	sliceOwner  map[nsName]string
	sliceSpec   map[nsName]*discoveryv1.EndpointSlice
	pods        map[nsName]*corev1.Pod
	nodes       map[string]*corev1.Node
	podServices map[nsName][]string
	nodePods    map[string][]nsName
	// building: newKubeIndex owns every list, so add appends in place.
	building bool
}

type namedSlice struct {
	name string
	spec *discoveryv1.EndpointSlice
}

// isKubeKind reports whether the index reads kind k.
func isKubeKind(k config.Kind) bool {
	return k == config.KindEndpointSlice || k == config.KindPod || k == config.KindNode
}

func newKubeIndex(resources []*config.Resource) *kubeIndex {
	ki := &kubeIndex{slices: map[nsName][]namedSlice{}, sliceOwner: map[nsName]string{},
		sliceSpec: map[nsName]*discoveryv1.EndpointSlice{}, pods: map[nsName]*corev1.Pod{},
		nodes: map[string]*corev1.Node{}, podServices: map[nsName][]string{}, nodePods: map[string][]nsName{}, building: true}
	for _, res := range resources {
		if isKubeKind(res.Kind) {
			ki.add(res)
		}
	}
	ki.building = false
	return ki
}

// deriveKubeIndex is newKubeIndex of the current resources from prev and
// the changed keys: the maps are copied (their lists shared) and each
// changed object leaves and re-enters them.
func deriveKubeIndex(prev *kubeIndex, changed map[config.Key]struct{}, cur changedSet) *kubeIndex {
	ki := &kubeIndex{slices: maps.Clone(prev.slices), sliceOwner: maps.Clone(prev.sliceOwner),
		sliceSpec: maps.Clone(prev.sliceSpec), pods: maps.Clone(prev.pods), nodes: maps.Clone(prev.nodes),
		podServices: maps.Clone(prev.podServices), nodePods: maps.Clone(prev.nodePods)}
	for key := range changed {
		if !isKubeKind(key.Kind) {
			continue
		}
		ki.remove(key)
		if res := cur.res[key]; res != nil {
			ki.add(res)
		}
	}
	return ki
}

// own returns list to edit: itself while building, else a copy (the
// list may be shared with the previous index).
func own[V any](ki *kubeIndex, list []V) []V {
	if ki.building {
		return list
	}
	return slices.Clone(list)
}

// add indexes res, copying every list it edits.
func (ki *kubeIndex) add(res *config.Resource) {
	k := nsName{res.Namespace, res.Name}
	switch spec := res.Spec.(type) {
	case *discoveryv1.EndpointSlice:
		svc := res.Labels[config.LabelServiceName]
		if svc == "" || res.Kind != config.KindEndpointSlice {
			return
		}
		sk := nsName{res.Namespace, svc}
		old := ki.slices[sk]
		i := sort.Search(len(old), func(i int) bool { return old[i].name > res.Name })
		ki.slices[sk] = slices.Insert(own(ki, old), i, namedSlice{name: res.Name, spec: spec})
		ki.sliceOwner[k], ki.sliceSpec[k] = svc, spec
		for _, pk := range slicePods(res.Namespace, spec) {
			ki.podServices[pk] = append(own(ki, ki.podServices[pk]), svc)
		}
	case *corev1.Pod:
		if res.Kind != config.KindPod {
			return
		}
		ki.pods[k] = spec
		if n := spec.Spec.NodeName; n != "" {
			ki.nodePods[n] = append(own(ki, ki.nodePods[n]), k)
		}
	case *corev1.Node:
		if res.Kind == config.KindNode {
			ki.nodes[res.Name] = spec
		}
	}
}

// remove takes the object key out of the index, copying the lists it edits.
func (ki *kubeIndex) remove(key config.Key) {
	k := nsName{key.Namespace, key.Name}
	switch key.Kind {
	case config.KindEndpointSlice:
		svc, spec := ki.sliceOwner[k], ki.sliceSpec[k]
		if spec == nil {
			return
		}
		sk := nsName{key.Namespace, svc}
		list := slices.DeleteFunc(slices.Clone(ki.slices[sk]), func(s namedSlice) bool { return s.name == key.Name })
		setOrDelete(ki.slices, sk, list)
		delete(ki.sliceOwner, k)
		delete(ki.sliceSpec, k)
		for _, pk := range slicePods(key.Namespace, spec) {
			list := slices.Clone(ki.podServices[pk])
			if i := slices.Index(list, svc); i >= 0 {
				list = slices.Delete(list, i, i+1)
			}
			setOrDelete(ki.podServices, pk, list)
		}
	case config.KindPod:
		pod := ki.pods[k]
		if pod == nil {
			return
		}
		delete(ki.pods, k)
		if n := pod.Spec.NodeName; n != "" {
			list := slices.DeleteFunc(slices.Clone(ki.nodePods[n]), func(p nsName) bool { return p == k })
			setOrDelete(ki.nodePods, n, list)
		}
	case config.KindNode:
		delete(ki.nodes, key.Name)
	}
}

func setOrDelete[K comparable, V any](m map[K][]V, k K, list []V) {
	if len(list) == 0 {
		delete(m, k)
	} else {
		m[k] = list
	}
}

// slicePods are the Pods a slice's endpoints name, once per endpoint.
func slicePods(ns string, spec *discoveryv1.EndpointSlice) []nsName {
	var out []nsName
	for _, e := range spec.Endpoints {
		if ref := e.TargetRef; ref != nil && ref.Kind == string(config.KindPod) {
			out = append(out, nsName{ns, ref.Name})
		}
	}
	return out
}

// servicesNaming returns the Services (as keys) whose endpoints a change
// of the Kubernetes object key may move, by ki's edges.
func (ki *kubeIndex) servicesNaming(key config.Key) []config.Key {
	if ki == nil {
		return nil
	}
	var out []config.Key
	svcKey := func(ns, name string) config.Key {
		return config.Key{Kind: config.KindService, Namespace: ns, Name: name}
	}
	switch key.Kind {
	case config.KindEndpointSlice:
		if svc := ki.sliceOwner[nsName{key.Namespace, key.Name}]; svc != "" {
			out = append(out, svcKey(key.Namespace, svc))
		}
	case config.KindPod:
		for _, s := range ki.podServices[nsName{key.Namespace, key.Name}] {
			out = append(out, svcKey(key.Namespace, s))
		}
	case config.KindNode:
		for _, p := range ki.nodePods[key.Name] {
			for _, s := range ki.podServices[p] {
				out = append(out, svcKey(p.namespace, s))
			}
		}
	}
	return out
}

// sliceEndpoints adds the endpoints of Service svc (ns/name) from its
// EndpointSlices, as Istio's endpointslice.go updateEndpointCacheForSlice:
// only ready endpoints (conditions.ready unset or true: Istio's
// endpointHealthStatus Healthy; not-ready ones are UnHealthy and
// terminating ones Terminating, neither sent without
// PILOT_SEND_UNHEALTHY_ENDPOINTS and persistent sessions, which sluice
// does not have: endpoint_builder.go filterIstioEndpoint); an endpoint
// whose targetRef names a Pod that does not exist is skipped (getPod);
// each slice port maps to the Service port of the same name; an address
// seen for a service port in an earlier slice is not repeated
// (endpointSliceCache.get keys by address and service port name).
func (ki *kubeIndex) sliceEndpoints(eps map[uint32][]*Endpoint, svc *Service, spec *corev1.ServiceSpec, ns, name string) {
	type seenKey struct {
		addr        string
		servicePort uint32
	}
	seen := map[seenKey]bool{}
	for _, entry := range ki.slices[nsName{ns, name}] {
		slice := entry.spec
		for _, e := range slice.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			var pod *corev1.Pod
			workload := entry.name
			if ref := e.TargetRef; ref != nil && ref.Kind == string(config.KindPod) {
				if pod = ki.pods[nsName{ns, ref.Name}]; pod == nil {
					continue
				}
				workload = ref.Name
			}
			base := ki.podEndpoint(ns+"/"+workload, pod)
			for _, addr := range e.Addresses {
				for _, sp := range slice.Ports {
					port, ok := svc.portNamed(sp.Name)
					if !ok {
						continue
					}
					num, ok := slicePortNumber(sp, spec, port, pod)
					if !ok || seen[seenKey{addr, port.Number}] {
						continue
					}
					seen[seenKey{addr, port.Number}] = true
					ep := *base
					ep.Address, ep.Port = addr, num
					eps[port.Number] = append(eps[port.Number], &ep)
				}
			}
		}
	}
}

// podEndpoint is what an endpoint takes from its Pod (Istio's
// NewEndpointBuilder): labels, service account (the workload identity
// spiffe://<trust domain>/ns/<ns>/sa/<sa>) and the locality of the Pod's
// Node (topology.kubernetes.io/region, zone, topology.istio.io/subzone:
// model.GetLocalityLabel / getNodeLocality).
// workload is the Pod's namespace/name, or the slice's when there is no
// Pod.
func (ki *kubeIndex) podEndpoint(workload string, pod *corev1.Pod) *Endpoint {
	if pod == nil {
		return &Endpoint{Workload: workload}
	}
	ep := &Endpoint{Labels: pod.Labels, Workload: workload,
		ServiceAccount: pod.Spec.ServiceAccountName}
	if ep.ServiceAccount == "" {
		// The ServiceAccount admission plugin sets "default" on every
		// Pod the API server admits; a Pod written in a file may omit it.
		ep.ServiceAccount = "default"
	}
	ep.Locality = ki.podLocality(pod)
	return ep
}

// podLocality is Istio's Controller.getPodLocality: the Pod's
// topology.istio.io/locality (or older istio-locality) label, dots read
// as slashes; else its Node's region, zone and subzone labels (the GA
// topology labels, else the deprecated failure-domain ones), written
// "region/zone/subzone" even when parts are empty; "" without a Node or
// any of them.
func (ki *kubeIndex) podLocality(pod *corev1.Pod) string {
	for _, l := range []string{"topology.istio.io/locality", "istio-locality"} {
		if loc, ok := pod.Labels[l]; ok {
			if loc != "" && !strings.Contains(loc, "/") {
				loc = strings.ReplaceAll(loc, ".", "/")
			}
			return loc
		}
	}
	node := ki.nodes[pod.Spec.NodeName]
	if node == nil || pod.Spec.NodeName == "" {
		return ""
	}
	get := func(ga, old string) string {
		if v, ok := node.Labels[ga]; ok {
			return v
		}
		return node.Labels[old]
	}
	region := get(config.LabelRegion, corev1.LabelFailureDomainBetaRegion)
	zone := get(config.LabelZone, corev1.LabelFailureDomainBetaZone)
	subzone := node.Labels[config.LabelSubzone]
	if region == "" && zone == "" && subzone == "" {
		return ""
	}
	return region + "/" + zone + "/" + subzone
}

// portNamed finds the service port a slice port belongs to by name (a
// slice's ports are named as the Service's; unnamed matches unnamed).
func (s *Service) portNamed(name *string) (Port, bool) {
	n := ""
	if name != nil {
		n = *name
	}
	for _, p := range s.Ports {
		if p.Name == n {
			return p, true
		}
	}
	return Port{}, false
}

// slicePortNumber is the port on the endpoint: the slice's, else the
// Service's targetPort, a name resolved against the Pod's container
// ports (Istio's FindPort).
func slicePortNumber(sp discoveryv1.EndpointPort, spec *corev1.ServiceSpec, port Port, pod *corev1.Pod) (uint32, bool) {
	if sp.Port != nil {
		return uint32(*sp.Port), *sp.Port > 0
	}
	for _, p := range spec.Ports {
		if p.Name != port.Name {
			continue
		}
		if p.TargetPort.Type == intstr.String {
			return namedContainerPort(pod, p.TargetPort.StrVal)
		}
		if p.TargetPort.IntVal > 0 {
			return uint32(p.TargetPort.IntVal), true
		}
		return port.Number, true
	}
	return 0, false
}

// namedContainerPort finds a container port by name in pod.
func namedContainerPort(pod *corev1.Pod, name string) (uint32, bool) {
	if pod == nil {
		return 0, false
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return uint32(p.ContainerPort), true
			}
		}
	}
	return 0, false
}
