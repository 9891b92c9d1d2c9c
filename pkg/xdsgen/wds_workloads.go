package xdsgen

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
)

// Workloads of the workload API, as istiod builds them
// (pilot/pkg/serviceregistry/ambient/workloads.go podWorkloadBuilder,
// workloadEntryWorkloadBuilder, serviceEntryWorkloadBuilder; uids as
// helpers.go generatePodUID, generateWorkloadEntryUID,
// generateServiceEntryUID). The services a workload backs, and the port
// each service port reaches on it, are the registry's: where it made the
// workload an endpoint of a service (EndpointSlices for Pods, selectors
// for WorkloadEntries, a ServiceEntry's own endpoints).

// Labels and annotations istiod reads to enroll a workload in ambient
// (setTunnelProtocol): the CNI's ambient.istio.io/redirection: enabled
// annotation, or networking.istio.io/tunnel naming http (a workload
// terminating HBONE itself). The same for Pods, WorkloadEntries and
// ServiceEntry endpoints (the ServiceEntry's): istiod does not read
// istio.io/dataplane-mode on a WorkloadEntry or its namespace for this.
const (
	ambientRedirectionAnnotation = "ambient.istio.io/redirection"
	tunnelLabel                  = "networking.istio.io/tunnel"
	autoRegistrationGroup        = "istio.io/autoRegistrationGroup"
	workloadNameLabel            = "service.istio.io/workload-name"
)

// workloadBuilder holds what building one push's workload API reads.
type workloadBuilder struct {
	push        *model.PushContext
	network     string
	trustDomain string
	// selecting are the policies converted with scope WORKLOAD_SELECTOR,
	// by namespace.
	selecting  map[string][]*model.AuthorizationPolicy
	peerAuthns *peerAuthns
	namespaces map[string]*config.Resource
	nodes      map[string]*corev1.Node
	// members: per workload (registry Endpoint.Workload and address), the
	// services it backs and their ports.
	members map[memberKey]map[string]*workloadapi.PortList
	// selectorServices are the Kubernetes Services with a selector, by
	// namespace (wds_podservices.go).
	selectorServices map[string][]selectorService
	warnings         []string
}

type memberKey struct{ workload, address string }

func newWorkloadBuilder(push *model.PushContext, selecting []*model.AuthorizationPolicy, pa *peerAuthns) *workloadBuilder {
	b := &workloadBuilder{push: push, selecting: map[string][]*model.AuthorizationPolicy{}, peerAuthns: pa, namespaces: map[string]*config.Resource{},
		nodes: map[string]*corev1.Node{}, members: map[memberKey]map[string]*workloadapi.PortList{}}
	// istiod's pickTrustDomain: the default trust domain is sent as "".
	if td := push.Mesh.GetTrustDomain(); td != "cluster.local" {
		b.trustDomain = td
	}
	for _, r := range push.ResourcesOf(config.KindNamespace) {
		b.namespaces[r.Name] = r
	}
	for _, r := range push.ResourcesOf(config.KindNode) {
		if n, ok := r.Spec.(*corev1.Node); ok {
			b.nodes[r.Name] = n
		}
	}
	for _, svc := range push.Services() {
		name := svc.Namespace + "/" + svc.Hostname
		for _, p := range svc.Ports {
			for _, ep := range push.Endpoints(svc, p.Number) {
				b.addMember(memberKey{ep.Workload, ep.Address}, name, p.Number, ep.Port)
			}
		}
	}
	b.selectorServices = b.indexSelectorServices()
	for _, ap := range selecting {
		b.selecting[ap.Namespace] = append(b.selecting[ap.Namespace], ap)
	}
	return b
}

func (b *workloadBuilder) addMember(k memberKey, svc string, port, target uint32) {
	m := b.members[k]
	if m == nil {
		m = map[string]*workloadapi.PortList{}
		b.members[k] = m
	}
	pl := m[svc]
	if pl == nil {
		pl = &workloadapi.PortList{}
		m[svc] = pl
	}
	if !slices.ContainsFunc(pl.Ports, func(p *workloadapi.Port) bool { return p.ServicePort == port }) {
		pl.Ports = append(pl.Ports, &workloadapi.Port{ServicePort: port, TargetPort: target})
	}
}

// servicesOf merges the memberships of a workload's addresses.
func (b *workloadBuilder) servicesOf(workload string, addresses ...string) map[string]*workloadapi.PortList {
	out := map[string]*workloadapi.PortList{}
	for _, a := range addresses {
		for svc, pl := range b.members[memberKey{workload, a}] {
			if have := out[svc]; have != nil {
				for _, p := range pl.Ports {
					if !slices.ContainsFunc(have.Ports, func(x *workloadapi.Port) bool { return x.ServicePort == p.ServicePort }) {
						have.Ports = append(have.Ports, p)
					}
				}
				continue
			}
			out[svc] = &workloadapi.PortList{Ports: slices.Clone(pl.Ports)}
		}
	}
	for _, pl := range out {
		sortPorts(pl.Ports)
	}
	return out
}

func (b *workloadBuilder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

// workloads builds every workload: Pods, WorkloadEntries and ServiceEntry
// endpoints.
func (b *workloadBuilder) workloads() []*workloadapi.Workload {
	var out []*workloadapi.Workload
	for _, r := range b.push.ResourcesOf(config.KindPod) {
		if pod, ok := r.Spec.(*corev1.Pod); ok {
			if w := b.podWorkload(r, pod); w != nil {
				out = append(out, w)
			}
		}
	}
	for _, r := range b.push.ResourcesOf(config.KindWorkloadEntry) {
		if spec, ok := r.Spec.(*networking.WorkloadEntry); ok {
			out = append(out, b.workloadEntry(r, spec))
		}
	}
	for _, r := range b.push.ResourcesOf(config.KindServiceEntry) {
		if spec, ok := r.Spec.(*networking.ServiceEntry); ok {
			out = append(out, b.serviceEntryWorkloads(r, spec)...)
		}
	}
	return out
}

// podWorkload is istiod's podWorkloadBuilder: a Pod that is not terminal
// and has an IP; UNHEALTHY when not Ready or being deleted.
func (b *workloadBuilder) podWorkload(r *config.Resource, pod *corev1.Pod) *workloadapi.Workload {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	ips := podIPs(pod)
	if len(ips) == 0 {
		return nil
	}
	w := &workloadapi.Workload{
		Uid: clusterID + "//Pod/" + r.Namespace + "/" + r.Name, Name: r.Name, Namespace: r.Namespace,
		Network: b.network, ClusterId: clusterID, ServiceAccount: podServiceAccount(pod), Node: pod.Spec.NodeName,
		Services: b.podServices(r, pod, ips), AuthorizationPolicies: b.policiesFor(r.Namespace, r.Labels),
		Status: workloadapi.WorkloadStatus_HEALTHY, TrustDomain: b.trustDomain, Locality: b.nodeLocality(pod.Spec.NodeName),
		WorkloadType: workloadapi.WorkloadType_POD,
	}
	for _, ip := range ips {
		a, _ := netip.ParseAddr(ip) // podIPs parsed them
		w.Addresses = append(w.Addresses, a.AsSlice())
	}
	if !podReady(pod) || pod.DeletionTimestamp != nil {
		w.Status = workloadapi.WorkloadStatus_UNHEALTHY
	}
	if pod.Spec.HostNetwork {
		w.NetworkMode = workloadapi.NetworkMode_HOST_NETWORK
	}
	w.WorkloadName = podWorkloadName(r.Name, pod)
	w.CanonicalName, w.CanonicalRevision = canonicalService(r.Labels, w.WorkloadName)
	setTunnelProtocol(r.Labels, r.Annotations, w)
	return w
}

// workloadEntry is istiod's workloadEntryWorkloadBuilder (labels are the
// spec's merged under the metadata's, ConvertClientWorkloadEntry).
func (b *workloadBuilder) workloadEntry(r *config.Resource, spec *networking.WorkloadEntry) *workloadapi.Workload {
	labels := mergeLabels(spec.GetLabels(), r.Labels)
	w := b.entryWorkload(r.Namespace, labels, spec)
	w.Uid = clusterID + "/networking.istio.io/WorkloadEntry/" + r.Namespace + "/" + r.Name
	w.Name = r.Name
	w.Services = b.servicesOf(r.Namespace+"/"+r.Name, spec.GetAddress())
	w.WorkloadName = r.Name
	if g, ok := r.Annotations[autoRegistrationGroup]; ok {
		w.WorkloadName = g
	} else if n, ok := labels[workloadNameLabel]; ok {
		w.WorkloadName = n
	}
	w.CanonicalName, w.CanonicalRevision = canonicalService(labels, w.WorkloadName)
	setTunnelProtocol(labels, r.Annotations, w)
	return w
}

// serviceEntryWorkloads is istiod's serviceEntryWorkloadBuilder: one
// workload per endpoint, or, for a DNS ServiceEntry without endpoints or
// selector, one per host addressed by its name.
func (b *workloadBuilder) serviceEntryWorkloads(r *config.Resource, spec *networking.ServiceEntry) []*workloadapi.Workload {
	eps := spec.GetEndpoints()
	key := func(i int) string { return r.Namespace + "/" + r.Name + "/endpoints[" + strconv.Itoa(i) + "]" }
	if len(eps) == 0 && spec.GetWorkloadSelector() == nil && (spec.GetResolution() == networking.ServiceEntry_DNS ||
		spec.GetResolution() == networking.ServiceEntry_DYNAMIC_DNS || spec.GetResolution() == networking.ServiceEntry_DNS_ROUND_ROBIN) {
		for _, h := range spec.GetHosts() {
			eps = append(eps, &networking.WorkloadEntry{Address: h})
		}
		key = func(int) string { return r.Namespace + "/" + r.Name }
	}
	out := make([]*workloadapi.Workload, 0, len(eps))
	for i, ep := range eps {
		w := b.entryWorkload(r.Namespace, r.Labels, ep)
		w.Uid = clusterID + "/networking.istio.io/ServiceEntry/" + r.Namespace + "/" + r.Name + "/" + ep.GetAddress()
		w.Name = r.Name
		w.Services = b.servicesOf(key(i), ep.GetAddress())
		w.WorkloadName = r.Name
		w.CanonicalName, w.CanonicalRevision = canonicalService(r.Labels, w.WorkloadName)
		setTunnelProtocol(r.Labels, r.Annotations, w)
		out = append(out, w)
	}
	return out
}

// entryWorkload is what a WorkloadEntry and a ServiceEntry endpoint
// share; policies select by labels (for a ServiceEntry endpoint, the
// ServiceEntry's, as istiod).
func (b *workloadBuilder) entryWorkload(ns string, labels map[string]string, spec *networking.WorkloadEntry) *workloadapi.Workload {
	w := &workloadapi.Workload{Namespace: ns, Network: b.network, ClusterId: clusterID,
		ServiceAccount: spec.GetServiceAccount(), AuthorizationPolicies: b.policiesFor(ns, labels),
		Status: workloadapi.WorkloadStatus_HEALTHY, TrustDomain: b.trustDomain, Locality: parseLocality(spec.GetLocality()),
		WorkloadType: workloadapi.WorkloadType_POD} // istiod: "HACK to impersonate pod"
	if spec.GetNetwork() != "" {
		w.Network = spec.GetNetwork()
	}
	if spec.GetWeight() > 0 {
		w.Capacity = wrapperspb.UInt32(spec.GetWeight())
	}
	if a, err := netip.ParseAddr(spec.GetAddress()); err == nil {
		w.Addresses = [][]byte{a.AsSlice()}
	} else {
		w.Hostname = spec.GetAddress()
	}
	return w
}

// policiesFor is istiod's buildWorkloadPolicies: the names of the
// selector policies of the root namespace or the workload's that select
// its labels, sorted, then the converted PeerAuthentications that apply
// (wds_peerauthn.go).
func (b *workloadBuilder) policiesFor(ns string, labels map[string]string) []string {
	var out []string
	for _, n := range dedupeNS(b.push.RootNamespace(), ns) {
		for _, ap := range b.selecting[n] {
			if registry.LabelsMatch(ap.Spec.GetSelector().GetMatchLabels(), labels) {
				out = append(out, ap.Namespace+"/"+ap.Name)
			}
		}
	}
	slices.Sort(out)
	return append(out, b.peerAuthns.forWorkload(ns, labels)...)
}

func dedupeNS(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// setTunnelProtocol is istiod's: HBONE for a workload the CNI redirects,
// HBONE and native for one announcing the http tunnel.
func setTunnelProtocol(labels, annotations map[string]string, w *workloadapi.Workload) {
	if annotations[ambientRedirectionAnnotation] == "enabled" {
		w.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
	}
	if slices.Contains(strings.Split(labels[tunnelLabel], ","), "http") {
		w.TunnelProtocol = workloadapi.TunnelProtocol_HBONE
		w.NativeTunnel = true
	}
}

// canonicalService is Istio's labels.CanonicalService.
func canonicalService(labels map[string]string, workloadName string) (name, revision string) {
	return firstNonEmpty(labels["service.istio.io/canonical-name"], labels["app.kubernetes.io/name"], labels["app"], workloadName),
		firstNonEmpty(labels["service.istio.io/canonical-revision"], labels["app.kubernetes.io/version"], labels["version"], "latest")
}

// podWorkloadName is istiod's workloadName (kube.GetWorkloadMetaFromPod):
// the controlling owner's name, a ReplicaSet's Deployment (the
// ReplicaSet's name without its pod-template-hash), a Job's CronJob (the
// Job's name without its -<timestamp>), else the Pod's name.
func podWorkloadName(name string, pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels["pod-template-hash"]; h != "" {
				return strings.TrimSuffix(ref.Name, "-"+h)
			}
		case "Job":
			if i := strings.LastIndexByte(ref.Name, '-'); i > 0 {
				if _, err := strconv.ParseUint(ref.Name[i+1:], 10, 64); err == nil {
					return ref.Name[:i]
				}
			}
		}
		return ref.Name
	}
	return name
}

func podIPs(pod *corev1.Pod) []string {
	var ips []string
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []string{pod.Status.PodIP}
	}
	for _, ip := range ips {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil // istiod drops a Pod with an IP it cannot read
		}
	}
	return ips
}

// podServiceAccount: a Pod the API server admitted always has one
// ("default" by the ServiceAccount admission plugin); a Pod in a file may
// omit it (as pkg/registry reads it).
func podServiceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return "default"
	}
	return pod.Spec.ServiceAccountName
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeLocality is istiod's nodeLocality (ambient/nodes.go): the Node's
// region, zone and subzone labels, nil without any.
func (b *workloadBuilder) nodeLocality(name string) *workloadapi.Locality {
	n := b.nodes[name]
	if n == nil {
		return nil
	}
	l := &workloadapi.Locality{Region: n.Labels[corev1.LabelTopologyRegion], Zone: n.Labels[corev1.LabelTopologyZone],
		Subzone: n.Labels["topology.istio.io/subzone"]}
	if l.Region == "" && l.Zone == "" && l.Subzone == "" {
		return nil
	}
	return l
}

// parseLocality reads a WorkloadEntry's "region/zone/subzone"
// (getWorkloadEntryLocality), nil when empty.
func parseLocality(s string) *workloadapi.Locality {
	if s == "" {
		return nil
	}
	parts := strings.SplitN(s, "/", 3)
	parts = append(parts, "", "")
	return &workloadapi.Locality{Region: parts[0], Zone: parts[1], Subzone: parts[2]}
}

// mergeLabels returns base with over's labels over it.
func mergeLabels(base, over map[string]string) map[string]string {
	if len(base) == 0 {
		return over
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
