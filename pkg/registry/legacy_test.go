package registry

import (
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// legacyBuild is Build as it was before the WorkloadEntry index: every
// service tests every WorkloadEntry of the mesh. The benchmarks compare
// against it and the equivalence tests check Build against it.
// Resources are expected
// to be valid (see config.Validate); anything unusable is skipped.
func legacyBuild(resources []*config.Resource, opts BuildOptions) *Registry {
	r := &Registry{byHost: map[string][]*Service{}, endpoints: map[endpointKey][]*Endpoint{}}
	var entries []*config.Resource
	for _, res := range resources {
		if res.Kind == config.KindWorkloadEntry {
			entries = append(entries, res)
		}
	}
	for _, res := range resources {
		switch spec := res.Spec.(type) {
		case *corev1.ServiceSpec:
			if res.Kind == config.KindService {
				legacyAddKubeService(r, res, spec, entries, opts)
			}
		case *networking.ServiceEntry:
			legacyAddServiceEntry(r, res, spec, entries)
		}
	}
	r.legacyFinish()
	return r
}

func legacyAddKubeService(r *Registry, res *config.Resource, spec *corev1.ServiceSpec, entries []*config.Resource, opts BuildOptions) {
	svc := &Service{
		Hostname:  config.ServiceHostname(res.Name, res.Namespace, opts.DomainSuffix),
		Namespace: res.Namespace,
		Source:    res.Key(),
		ExportTo:  exportTo(res.Annotations["networking.istio.io/exportTo"], res.Namespace),
	}
	if spec.ClusterIP != "" && spec.ClusterIP != "None" {
		svc.Addresses = []string{spec.ClusterIP}
	}
	if spec.ClusterIP == "None" {
		svc.Resolution = ResolutionNone
	}
	for _, p := range spec.Ports {
		explicit := ""
		if p.AppProtocol != nil {
			explicit = *p.AppProtocol
		}
		port := Port{Name: p.Name, Number: uint32(p.Port), Protocol: ProtocolFromPort(explicit, p.Name)}
		if p.TargetPort.IntVal > 0 {
			port.TargetPort = uint32(p.TargetPort.IntVal)
		}
		svc.Ports = append(svc.Ports, port)
	}
	eps := map[uint32][]*Endpoint{}
	if len(spec.Selector) > 0 {
		for _, we := range entries {
			if we.Namespace != res.Namespace {
				continue
			}
			legacyAddWorkload(eps, svc, we, spec.Selector)
		}
	}
	r.legacyAdd(svc, eps)
}

// addWorkload adds WorkloadEntry we as an endpoint of every port of svc if
// its labels match selector.
func legacyAddWorkload(eps map[uint32][]*Endpoint, svc *Service, we *config.Resource, selector map[string]string) {
	spec := we.Spec.(*networking.WorkloadEntry)
	labels := mergedLabels(we.Labels, spec.Labels)
	if !LabelsMatch(selector, labels) {
		return
	}
	for _, port := range svc.Ports {
		eps[port.Number] = append(eps[port.Number], &Endpoint{
			Address:        spec.Address,
			Port:           workloadPort(spec.Ports, port),
			Labels:         labels,
			Locality:       spec.Locality,
			Weight:         spec.Weight,
			ServiceAccount: spec.ServiceAccount,
			Workload:       we.Namespace + "/" + we.Name,
		})
	}
}

func legacyAddServiceEntry(r *Registry, res *config.Resource, spec *networking.ServiceEntry, entries []*config.Resource) {
	resolution := ResolutionNone
	switch spec.Resolution {
	case networking.ServiceEntry_STATIC:
		resolution = ResolutionStatic
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		resolution = ResolutionDNS
	}
	var ports []Port
	for _, p := range spec.Ports {
		ports = append(ports, Port{Name: p.Name, Number: p.Number, TargetPort: p.TargetPort,
			Protocol: ProtocolFromPort(p.Protocol, p.Name)})
	}
	export := exportToList(spec.ExportTo, res.Namespace)
	for _, host := range spec.Hosts {
		svc := &Service{
			Hostname:     host,
			Namespace:    res.Namespace,
			Addresses:    spec.Addresses,
			Ports:        ports,
			Resolution:   resolution,
			MeshExternal: spec.Location == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo:     export,
			Source:       res.Key(),
			// Istio's ServiceAccounts of a ServiceEntry's services
			// (serviceentry/conversion.go convertServices).
			SubjectAltNames: spec.SubjectAltNames,
		}
		eps := map[uint32][]*Endpoint{}
		for i, we := range spec.Endpoints {
			for _, port := range ports {
				eps[port.Number] = append(eps[port.Number], &Endpoint{
					Address:        we.Address,
					Port:           workloadPort(we.Ports, port),
					Labels:         we.Labels,
					Locality:       we.Locality,
					Weight:         we.Weight,
					ServiceAccount: we.ServiceAccount,
					Workload:       res.Namespace + "/" + res.Name + "/endpoints[" + strconv.Itoa(i) + "]",
				})
			}
		}
		if sel := spec.WorkloadSelector.GetLabels(); len(sel) > 0 {
			for _, we := range entries {
				if we.Namespace == res.Namespace {
					legacyAddWorkload(eps, svc, we, sel)
				}
			}
		}
		if resolution == ResolutionDNS && len(spec.Endpoints) == 0 && len(eps) == 0 && !strings.HasPrefix(host, "*") {
			// A DNS service without endpoints resolves its own host name.
			for _, port := range ports {
				eps[port.Number] = []*Endpoint{{Address: host, Port: workloadPort(nil, port), Workload: res.Namespace + "/" + res.Name}}
			}
		}
		r.legacyAdd(svc, eps)
	}
}

func (r *Registry) legacyAdd(svc *Service, eps map[uint32][]*Endpoint) {
	r.services = append(r.services, svc)
	r.byHost[svc.Hostname] = append(r.byHost[svc.Hostname], svc)
	for port, list := range eps {
		k := endpointKey{host: svc.Hostname, namespace: svc.Namespace, port: port}
		r.endpoints[k] = append(r.endpoints[k], list...)
	}
}

func (r *Registry) legacyFinish() {
	sort.SliceStable(r.services, func(i, j int) bool {
		a, b := r.services[i], r.services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		return a.Namespace < b.Namespace
	})
	for _, list := range r.byHost {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Namespace < list[j].Namespace })
	}
	for _, list := range r.endpoints {
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].Address != list[j].Address {
				return list[i].Address < list[j].Address
			}
			return list[i].Port < list[j].Port
		})
	}
}
