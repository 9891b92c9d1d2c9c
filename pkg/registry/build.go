package registry

import (
	"net"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// BuildOptions say how to read resources into a registry.
type BuildOptions struct {
	// DomainSuffix is the cluster domain, "cluster.local" when empty.
	DomainSuffix string
}

// Build indexes the services declared by resources. Resources are expected
// to be valid (see config.Validate); anything unusable is skipped.
// WorkloadEntries are indexed by namespace and label (workloads.go), so a
// selector costs its matches, not every entry of the mesh.
func Build(resources []*config.Resource, opts BuildOptions) *Registry {
	r := newRegistry(opts, newWorkloadIndex(resources))
	r.kube = newKubeIndex(resources)
	for _, res := range resources {
		if src := newSource(res, r.workloads, r.kube, opts); src != nil {
			r.addSource(src)
		}
	}
	r.mergeEndpoints(nil, nil)
	r.finish()
	return r
}

// source is one Service or ServiceEntry as the registry read it: the
// services it declares (a ServiceEntry one per host) and, per service, its
// own endpoints per port, before they merge with other sources' of the
// same hostname and namespace.
type source struct {
	res      *config.Resource
	services []*Service
	eps      []map[uint32][]*Endpoint
	// selector selects the WorkloadEntries of res's namespace it takes
	// endpoints from; empty when it selects none.
	selector map[string]string
}

// sourcePart is service i of the source with key key.
type sourcePart struct {
	key config.Key
	i   int
}

func newRegistry(opts BuildOptions, wi *workloadIndex) *Registry {
	return &Registry{byHost: map[string][]*Service{}, endpoints: map[endpointKey][]*Endpoint{},
		opts: opts, workloads: wi, sources: map[config.Key]*source{},
		hostSources: map[hostNS][]sourcePart{}, selectors: map[string]map[string][]config.Key{}}
}

// newSource reads res if it declares services, else returns nil.
func newSource(res *config.Resource, wi *workloadIndex, ki *kubeIndex, opts BuildOptions) *source {
	switch spec := res.Spec.(type) {
	case *corev1.ServiceSpec:
		if res.Kind == config.KindService {
			return kubeService(res, spec, wi, ki, opts)
		}
	case *networking.ServiceEntry:
		return serviceEntry(res, spec, wi)
	}
	return nil
}

// addSource adds src's services, in resource order.
func (r *Registry) addSource(src *source) {
	key := src.res.Key()
	r.sources[key] = src
	if len(src.selector) > 0 {
		byPair := r.selectors[src.res.Namespace]
		if byPair == nil {
			byPair = map[string][]config.Key{}
			r.selectors[src.res.Namespace] = byPair
		}
		pair := selectorPair(src.selector)
		byPair[pair] = append(byPair[pair], key)
	}
	for i, svc := range src.services {
		r.services = append(r.services, svc)
		r.byHost[svc.Hostname] = append(r.byHost[svc.Hostname], svc)
		k := hostNS{host: svc.Hostname, namespace: svc.Namespace}
		r.hostSources[k] = append(r.hostSources[k], sourcePart{key: key, i: i})
	}
}

// mergeEndpoints fills r.endpoints from its sources: a hostname and
// namespace in dirty (all of them when prev is nil) gets its sources'
// endpoints concatenated in resource order and sorted by address and port;
// the others share prev's lists.
func (r *Registry) mergeEndpoints(prev *Registry, dirty map[hostNS]bool) {
	for k, parts := range r.hostSources {
		if prev != nil && !dirty[k] {
			for _, part := range parts {
				for port := range r.sources[part.key].eps[part.i] {
					ek := endpointKey{host: k.host, namespace: k.namespace, port: port}
					r.endpoints[ek] = prev.endpoints[ek]
				}
			}
			continue
		}
		r.mergeHost(k, parts)
	}
}

// mergeHost builds the endpoint lists of one hostname and namespace.
func (r *Registry) mergeHost(k hostNS, parts []sourcePart) {
	var keys []endpointKey
	for _, part := range parts {
		for port, list := range r.sources[part.key].eps[part.i] {
			ek := endpointKey{host: k.host, namespace: k.namespace, port: port}
			if _, seen := r.endpoints[ek]; !seen {
				keys = append(keys, ek)
			}
			r.endpoints[ek] = append(r.endpoints[ek], list...)
		}
	}
	for _, ek := range keys {
		sortEndpoints(r.endpoints[ek])
	}
}

func (r *Registry) finish() {
	sortServices(r.services)
	for _, list := range r.byHost {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Namespace < list[j].Namespace })
	}
}

// kubeService reads a Kubernetes Service as Istio's kube/conversion.go
// ConvertService: headless (clusterIP None) has no VIP and passes traffic
// to the address asked for (Passthrough); ExternalName is a mesh-external
// DNS service whose endpoint is the external name (Istio before
// ENABLE_EXTERNAL_NAME_ALIAS; the alias form needs no endpoints and is not
// expressible here). Endpoints come from its EndpointSlices (kube.go) and
// the WorkloadEntries its selector takes.
func kubeService(res *config.Resource, spec *corev1.ServiceSpec, wi *workloadIndex, ki *kubeIndex, opts BuildOptions) *source {
	svc := &Service{
		Hostname:  config.ServiceHostname(res.Name, res.Namespace, opts.DomainSuffix),
		Namespace: res.Namespace,
		Source:    res.Key(),
		ExportTo:  exportTo(res.Annotations["networking.istio.io/exportTo"], res.Namespace),
	}
	if spec.ClusterIP != "" && spec.ClusterIP != "None" {
		svc.Addresses = []string{spec.ClusterIP}
		if len(spec.ClusterIPs) > 1 {
			// Dual stack: every family's VIP (ConvertService).
			svc.Addresses = spec.ClusterIPs
		}
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
	if spec.Type == corev1.ServiceTypeExternalName && spec.ExternalName != "" {
		svc.Resolution, svc.MeshExternal, svc.Addresses = ResolutionDNS, true, nil
		for _, port := range svc.Ports {
			eps[port.Number] = []*Endpoint{{Address: strings.TrimSuffix(spec.ExternalName, "."), Port: port.Number,
				Workload: res.Namespace + "/" + res.Name}}
		}
		return &source{res: res, services: []*Service{svc}, eps: []map[uint32][]*Endpoint{eps}}
	}
	ki.sliceEndpoints(eps, svc, spec, res.Namespace, res.Name)
	for _, w := range wi.selected(res.Namespace, spec.Selector) {
		addWorkload(eps, svc, w)
	}
	return &source{res: res, services: []*Service{svc}, eps: []map[uint32][]*Endpoint{eps}, selector: spec.Selector}
}

// addWorkload adds WorkloadEntry w as an endpoint of every port of svc.
func addWorkload(eps map[uint32][]*Endpoint, svc *Service, w *workload) {
	spec := w.spec
	for _, port := range svc.Ports {
		eps[port.Number] = append(eps[port.Number], &Endpoint{
			Address:        spec.Address,
			Port:           workloadPort(spec.Ports, port),
			Labels:         w.labels,
			Locality:       spec.Locality,
			Weight:         spec.Weight,
			ServiceAccount: spec.ServiceAccount,
			Workload:       w.res.Namespace + "/" + w.res.Name,
		})
	}
}

// workloadPort picks the port on a workload for a service port: the
// workload's own mapping for the port's name, else the target port, else
// the service port.
func workloadPort(ports map[string]uint32, p Port) uint32 {
	if n, ok := ports[p.Name]; ok && n > 0 {
		return n
	}
	if p.TargetPort > 0 {
		return p.TargetPort
	}
	return p.Number
}

func mergedLabels(meta, spec map[string]string) map[string]string {
	out := make(map[string]string, len(meta)+len(spec))
	for k, v := range meta {
		out[k] = v
	}
	for k, v := range spec {
		out[k] = v
	}
	return out
}

func serviceEntry(res *config.Resource, spec *networking.ServiceEntry, wi *workloadIndex) *source {
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
	src := &source{res: res, selector: spec.WorkloadSelector.GetLabels()}
	selected := wi.selected(res.Namespace, src.selector)
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
		src.services = append(src.services, svc)
		src.eps = append(src.eps, serviceEntryEndpoints(res, spec, svc, selected))
	}
	return src
}

// serviceEntryEndpoints are the endpoints of one host of a ServiceEntry:
// its inline endpoints, then the WorkloadEntries it selects; a DNS host
// with neither resolves its own name.
func serviceEntryEndpoints(res *config.Resource, spec *networking.ServiceEntry, svc *Service, selected []*workload) map[uint32][]*Endpoint {
	eps := map[uint32][]*Endpoint{}
	for i, we := range spec.Endpoints {
		for _, port := range svc.Ports {
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
	for _, w := range selected {
		addWorkload(eps, svc, w)
	}
	host := svc.Hostname
	if svc.Resolution == ResolutionDNS && len(spec.Endpoints) == 0 && len(eps) == 0 && !strings.HasPrefix(host, "*") {
		// A DNS service without endpoints resolves its own host name.
		for _, port := range svc.Ports {
			eps[port.Number] = []*Endpoint{{Address: host, Port: workloadPort(nil, port), Workload: res.Namespace + "/" + res.Name}}
		}
	}
	return eps
}

func exportTo(annotation, ns string) []string {
	if annotation == "" {
		return nil
	}
	return exportToList(strings.Split(annotation, ","), ns)
}

func exportToList(list []string, ns string) []string {
	var out []string
	for _, e := range list {
		e = strings.TrimSpace(e)
		switch e {
		case "":
		case ".":
			out = append(out, ns)
		default:
			out = append(out, e)
		}
	}
	return out
}

// IsIP reports whether s is an IP address.
func IsIP(s string) bool { return net.ParseIP(s) != nil }
