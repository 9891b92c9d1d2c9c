// Package registry builds the service registry: the services the mesh knows
// and the endpoints behind each port, from ServiceEntry, WorkloadEntry and
// Kubernetes Service resources, a Service's Pods through its
// EndpointSlices (with the Pods' Nodes, kube.go). A Registry is immutable
// once built.
package registry

import (
	"sort"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Protocol is a port's application protocol, named as Istio names them.
type Protocol string

// Protocols sluice distinguishes.
const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTP2 Protocol = "HTTP2"
	ProtocolGRPC  Protocol = "GRPC"
	ProtocolHTTPS Protocol = "HTTPS"
	ProtocolTLS   Protocol = "TLS"
	ProtocolTCP   Protocol = "TCP"
	// ProtocolUnknown is a port whose protocol could not be told from its
	// name or appProtocol. Clients route it as HTTP; a sidecar's inbound
	// port of this protocol is sniffed per connection, as Istio's
	// (xdsgen/inbound_sniff.go).
	ProtocolUnknown Protocol = "UNKNOWN"
)

// IsHTTP reports whether traffic on the port is routed by HTTP rules.
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolUnknown:
		return true
	}
	return false
}

// Resolution says how a service's endpoints are found.
type Resolution int

// Resolutions, as ServiceEntry names them.
const (
	// ResolutionStatic: endpoints are known addresses (ServiceEntry STATIC,
	// Kubernetes Services). The proxy balances over them itself.
	ResolutionStatic Resolution = iota
	// ResolutionDNS: endpoints are names the proxy resolves.
	ResolutionDNS
	// ResolutionNone: traffic goes to the address the client asked for.
	ResolutionNone
)

func (r Resolution) String() string {
	switch r {
	case ResolutionDNS:
		return "DNS"
	case ResolutionNone:
		return "NONE"
	}
	return "STATIC"
}

// Port is one port of a service.
type Port struct {
	Name     string
	Number   uint32
	Protocol Protocol
	// TargetPort is the port on workloads when they do not name their own
	// (Kubernetes targetPort, ServiceEntry targetPort); 0 means Number.
	TargetPort uint32
}

// Service is one hostname the mesh can route to.
type Service struct {
	Hostname  string
	Namespace string
	// Addresses are the service's VIPs, if any.
	Addresses    []string
	Ports        []Port
	Resolution   Resolution
	MeshExternal bool
	// ExportTo lists the namespaces that see this service; "*" is all and
	// "." was already turned into the service's namespace. Empty means all.
	ExportTo []string
	// Source is the resource the service came from.
	Source config.Key
	// SubjectAltNames are a ServiceEntry's subjectAltNames: the names its
	// servers' certificates are verified against (xdsgen applyUpstreamTLS).
	SubjectAltNames []string
}

// Port returns the service port with the given number.
func (s *Service) Port(n uint32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Number == n {
			return p, true
		}
	}
	return Port{}, false
}

// VisibleTo reports whether a proxy in namespace ns may see the service.
func (s *Service) VisibleTo(ns string) bool {
	if len(s.ExportTo) == 0 {
		return true
	}
	for _, e := range s.ExportTo {
		if e == "*" || e == ns {
			return true
		}
	}
	return false
}

// Endpoint is one workload instance behind one service port.
type Endpoint struct {
	// Address is an IP, or a hostname for DNS services.
	Address string
	Port    uint32
	Labels  map[string]string
	// Locality is "region/zone/subzone", as WorkloadEntry writes it.
	Locality       string
	Weight         uint32
	ServiceAccount string
	// Workload names what it came from as namespace/name: the
	// WorkloadEntry, ServiceEntry endpoint, Pod, or (an endpoint without
	// a Pod) EndpointSlice.
	Workload string
}

// Registry is an immutable index of services and their endpoints.
type Registry struct {
	services  []*Service
	byHost    map[string][]*Service
	endpoints map[endpointKey][]*Endpoint

	// What Derive needs to build the next registry from this one
	// (derive.go): the options, the WorkloadEntry index, and per Service
	// or ServiceEntry the services it declared with their own endpoints.
	opts      BuildOptions
	workloads *workloadIndex
	kube      *kubeIndex
	sources   map[config.Key]*source
	// hostSources lists, per hostname and namespace, the sources
	// declaring it, in resource order (their endpoints merge).
	hostSources map[hostNS][]sourcePart
	// selectors index, per namespace, the sources with a workload
	// selector by one label pair of it (the smallest key's): a workload's
	// labels find their candidate selectors in len(labels) lookups.
	selectors map[string]map[string][]config.Key
}

type hostNS struct{ host, namespace string }

type endpointKey struct {
	host      string
	namespace string
	port      uint32
}

// Services returns every service, ordered by hostname then namespace.
func (r *Registry) Services() []*Service { return r.services }

// ServicesForHost returns the services with exactly this hostname, in
// namespace order (several namespaces may declare one host).
func (r *Registry) ServicesForHost(host string) []*Service { return r.byHost[host] }

// Endpoints returns the endpoints of svc's port.
func (r *Registry) Endpoints(svc *Service, port uint32) []*Endpoint {
	return r.endpoints[endpointKey{host: svc.Hostname, namespace: svc.Namespace, port: port}]
}

// LabelsMatch reports whether labels contain every pair in selector.
func LabelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

func sortServices(services []*Service) {
	sort.SliceStable(services, func(i, j int) bool {
		a, b := services[i], services[j]
		if a.Hostname != b.Hostname {
			return a.Hostname < b.Hostname
		}
		return a.Namespace < b.Namespace
	})
}

func sortEndpoints(list []*Endpoint) {
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Address != list[j].Address {
			return list[i].Address < list[j].Address
		}
		return list[i].Port < list[j].Port
	})
}

// ProtocolFromPort infers a port's protocol the way Istio does: an explicit
// protocol (ServiceEntry protocol, Kubernetes appProtocol) wins, else the
// port name's prefix before "-" ("http-web" is HTTP), else unknown.
func ProtocolFromPort(explicit, name string) Protocol {
	if proto, ok := parseProtocol(explicit); ok {
		return proto
	}
	prefix := name
	if i := strings.IndexByte(name, '-'); i >= 0 {
		prefix = name[:i]
	}
	if proto, ok := parseProtocol(prefix); ok {
		return proto
	}
	return ProtocolUnknown
}

func parseProtocol(s string) (Protocol, bool) {
	switch strings.ToLower(s) {
	case "http", "http/1.1", "kubernetes.io/http":
		return ProtocolHTTP, true
	case "http2", "h2c", "kubernetes.io/h2c":
		return ProtocolHTTP2, true
	case "grpc", "grpc-web":
		return ProtocolGRPC, true
	case "https":
		return ProtocolHTTPS, true
	case "tls":
		return ProtocolTLS, true
	case "tcp", "mongo", "redis", "mysql":
		return ProtocolTCP, true
	}
	return "", false
}
