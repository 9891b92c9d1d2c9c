package xdsgen

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
)

// Services of the workload API, as istiod builds them
// (pilot/pkg/serviceregistry/ambient/services.go constructService for a
// Kubernetes Service, constructServiceEntries for a ServiceEntry, one
// per host), from the registry's services.

// trafficDistributionAnnotation is Istio's networking.istio.io/traffic-distribution,
// the legacy form of a Service's spec.trafficDistribution.
const trafficDistributionAnnotation = "networking.istio.io/traffic-distribution"

// services builds one Service per registry service (namespace/hostname);
// a second service of one name is left out with a warning.
func (b *workloadBuilder) services() ([]*workloadapi.Service, error) {
	var out []*workloadapi.Service
	seen := map[string]bool{}
	for _, svc := range b.push.Services() {
		name := svc.Namespace + "/" + svc.Hostname
		if seen[name] {
			b.warn("%s %s/%s: host %s is declared twice in namespace %s; the workload API has the first", svc.Source.Kind,
				svc.Source.Namespace, svc.Source.Name, svc.Hostname, svc.Namespace)
			continue
		}
		seen[name] = true
		s := &workloadapi.Service{Name: svc.Source.Name, Namespace: svc.Namespace, Hostname: svc.Hostname}
		for _, a := range svc.Addresses {
			addr, err := parseAddrOrPrefix(a)
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: address %q: %w", svc.Source.Kind, svc.Source.Namespace, svc.Source.Name, a, err)
			}
			s.Addresses = append(s.Addresses, &workloadapi.NetworkAddress{Network: b.network, Address: addr.AsSlice()})
		}
		for _, p := range svc.Ports {
			s.Ports = append(s.Ports, &workloadapi.Port{ServicePort: p.Number, TargetPort: serviceTargetPort(svc, p),
				AppProtocol: appProtocol(p.Protocol)})
		}
		b.serviceSource(svc, s)
		out = append(out, s)
	}
	return out, nil
}

// serviceTargetPort: a Kubernetes Service's numeric targetPort (0 for a
// named one, which each workload resolves: its PortList), a
// ServiceEntry's targetPort or else its port number.
func serviceTargetPort(svc *registry.Service, p registry.Port) uint32 {
	if svc.Source.Kind == config.KindServiceEntry && p.TargetPort == 0 {
		return p.Number
	}
	return p.TargetPort
}

// serviceSource sets what the source object adds: for a Kubernetes
// Service canonical, IP families and load balancing
// (internalTrafficPolicy Local, trafficDistribution,
// publishNotReadyAddresses); for a ServiceEntry its subjectAltNames and,
// with resolution NONE, passthrough.
func (b *workloadBuilder) serviceSource(svc *registry.Service, s *workloadapi.Service) {
	res := b.push.Resource(svc.Source)
	if res == nil {
		return
	}
	switch spec := res.Spec.(type) {
	case *corev1.ServiceSpec:
		s.Canonical = true
		s.IpFamilies = ipFamilies(spec.IPFamilies)
		if itp := spec.InternalTrafficPolicy; itp != nil && *itp == corev1.ServiceInternalTrafficPolicyLocal {
			s.LoadBalancing = &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_STRICT,
				RoutingPreference: []workloadapi.LoadBalancing_Scope{workloadapi.LoadBalancing_NODE}}
		} else {
			s.LoadBalancing = b.trafficDistribution(spec.TrafficDistribution, res)
		}
		if spec.PublishNotReadyAddresses {
			if s.LoadBalancing == nil {
				s.LoadBalancing = &workloadapi.LoadBalancing{}
			}
			s.LoadBalancing.HealthPolicy = workloadapi.LoadBalancing_ALLOW_ALL
		}
	case *networking.ServiceEntry:
		s.SubjectAltNames = spec.GetSubjectAltNames()
		if spec.GetResolution() == networking.ServiceEntry_NONE {
			s.LoadBalancing = &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_PASSTHROUGH,
				HealthPolicy: workloadapi.LoadBalancing_ALLOW_ALL}
		} else {
			s.LoadBalancing = b.trafficDistribution(nil, res)
		}
	}
}

// trafficDistribution is istiod's GetTrafficDistribution and its load
// balancing presets: the spec field, else the object's annotation, else
// its namespace's; PreferClose/PreferSameZone fail over by zone,
// PreferSameNode by node.
func (b *workloadBuilder) trafficDistribution(spec *string, res *config.Resource) *workloadapi.LoadBalancing {
	v := ""
	if spec != nil {
		v = *spec
	} else if a := res.Annotations[trafficDistributionAnnotation]; a != "" {
		v = a
	} else if ns := b.namespaces[res.Namespace]; ns != nil {
		v = ns.Annotations[trafficDistributionAnnotation]
	}
	scopes := []workloadapi.LoadBalancing_Scope{workloadapi.LoadBalancing_NETWORK, workloadapi.LoadBalancing_REGION,
		workloadapi.LoadBalancing_ZONE}
	switch strings.ToLower(v) {
	case strings.ToLower(corev1.ServiceTrafficDistributionPreferClose), strings.ToLower(corev1.ServiceTrafficDistributionPreferSameZone):
	case strings.ToLower(corev1.ServiceTrafficDistributionPreferSameNode):
		scopes = append(scopes, workloadapi.LoadBalancing_SUBZONE, workloadapi.LoadBalancing_NODE)
	default:
		return nil
	}
	return &workloadapi.LoadBalancing{Mode: workloadapi.LoadBalancing_FAILOVER, RoutingPreference: scopes}
}

func ipFamilies(f []corev1.IPFamily) workloadapi.IPFamilies {
	switch {
	case len(f) == 2:
		return workloadapi.IPFamilies_DUAL
	case len(f) == 1 && f[0] == corev1.IPv4Protocol:
		return workloadapi.IPFamilies_IPV4_ONLY
	case len(f) == 1:
		return workloadapi.IPFamilies_IPV6_ONLY
	}
	return workloadapi.IPFamilies_AUTOMATIC
}

// appProtocol is istiod's toAppProtocolFromProtocol.
func appProtocol(p registry.Protocol) workloadapi.AppProtocol {
	switch p {
	case registry.ProtocolHTTP:
		return workloadapi.AppProtocol_HTTP11
	case registry.ProtocolHTTP2:
		return workloadapi.AppProtocol_HTTP2
	case registry.ProtocolGRPC:
		return workloadapi.AppProtocol_GRPC
	case registry.ProtocolTLS, registry.ProtocolHTTPS:
		return workloadapi.AppProtocol_TLS
	case registry.ProtocolTCP:
		return workloadapi.AppProtocol_TCP
	}
	return workloadapi.AppProtocol_UNKNOWN
}

// parseAddrOrPrefix reads an IP, or a CIDR's address (istiod's
// toNetworkAddressFromCidr).
func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Addr(), err
	}
	return netip.ParseAddr(s)
}

// sortPorts orders a PortList by service port, then target port.
func sortPorts(ports []*workloadapi.Port) {
	slices.SortFunc(ports, func(a, b *workloadapi.Port) int {
		return cmp.Or(cmp.Compare(a.ServicePort, b.ServicePort), cmp.Compare(a.TargetPort, b.TargetPort))
	})
}
