package analysis

import (
	"regexp"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Constants of Istio's analyzers (analyzers/util/constants.go).
const (
	defaultClusterLocalDomain = "svc.cluster.local"
	exportToNamespaceLocal    = "."
	exportToAllNamespaces     = "*"
	meshGateway               = "mesh"
	exportToAnnotation        = "networking.istio.io/exportTo"
)

var fqdnPattern = regexp.MustCompile(`^(.+)\.(.+)\.svc\.cluster\.local$`)

// scopedFqdn is "scope/fqdn": a host and the namespace (or "*") that sees
// it (analyzers/util/hosts.go ScopedFqdn).
type scopedFqdn string

func newScopedFqdn(scope, namespace, host string) scopedFqdn {
	return scopedFqdn(scope + "/" + convertHostToFQDN(namespace, host))
}

func (s scopedFqdn) scopeAndFqdn() (string, string) {
	scope, fqdn, _ := strings.Cut(string(s), "/")
	return scope, fqdn
}

// convertHostToFQDN qualifies a short name with the namespace's service
// domain (util.ConvertHostToFQDN).
func convertHostToFQDN(namespace, host string) string {
	if !strings.HasPrefix(host, "*") && !strings.Contains(host, ".") {
		return host + "." + namespace + "." + defaultClusterLocalDomain
	}
	return host
}

// fullNameFromHost is util.GetResourceNameFromHost: "ns/name" of a
// service host, the namespace given for short names.
func fullNameFromHost(defaultNamespace, host string) string {
	if m := fqdnPattern.FindStringSubmatch(host); m != nil {
		return m[2] + "/" + m[1]
	}
	return defaultNamespace + "/" + host
}

// isExportToAll is util.IsExportToAllNamespaces.
func isExportToAll(exportTo []string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == exportToAllNamespaces {
			return true
		}
	}
	return false
}

// serviceEntryHosts indexes every ServiceEntry host and Kubernetes Service,
// the latter as a ServiceEntry of its ports, by scoped FQDN
// (util.InitServiceEntryHostMap).
func serviceEntryHosts(s *Snapshot) map[scopedFqdn]*networking.ServiceEntry {
	out := map[scopedFqdn]*networking.ServiceEntry{}
	for _, o := range s.Objects(config.KindServiceEntry) {
		se := o.Spec.(*networking.ServiceEntry)
		for _, h := range se.GetHosts() {
			if isExportToAll(se.GetExportTo()) {
				out[newScopedFqdn(exportToAllNamespaces, o.Namespace, h)] = se
				continue
			}
			for _, ns := range se.GetExportTo() {
				if ns == exportToNamespaceLocal {
					ns = o.Namespace
				}
				out[newScopedFqdn(ns, o.Namespace, h)] = se
			}
		}
	}
	for _, o := range s.Objects(config.KindService) {
		svc := o.Spec.(*corev1.ServiceSpec)
		var ports []*networking.ServicePort
		for _, p := range svc.Ports {
			ports = append(ports, &networking.ServicePort{Number: uint32(p.Port), Name: p.Name, Protocol: string(p.Protocol)})
		}
		se := &networking.ServiceEntry{Hosts: []string{convertHostToFQDN(o.Namespace, o.Name)}, Ports: ports}
		for _, scope := range visibleNamespaces(o.Annotations[exportToAnnotation], o.Namespace) {
			out[newScopedFqdn(scope, o.Namespace, o.Name)] = se
		}
	}
	return out
}

// visibleNamespaces reads a Service's exportTo annotation
// (util.getVisibleNamespacesFromExportToAnno).
func visibleNamespaces(anno, ns string) []string {
	if anno == "" {
		return []string{exportToAllNamespaces}
	}
	var scopes []string
	for _, e := range strings.Split(anno, ",") {
		e = strings.TrimSpace(e)
		if e == exportToNamespaceLocal {
			e = ns
		}
		scopes = append(scopes, e)
	}
	return scopes
}

// destinationHost finds the service a host names from sourceNS, seen
// through exportTo (util.GetDestinationHost).
func destinationHost(sourceNS string, exportTo []string, host string, hosts map[scopedFqdn]*networking.ServiceEntry) *networking.ServiceEntry {
	if se, ok := hosts[newScopedFqdn(exportToAllNamespaces, sourceNS, host)]; ok {
		return se
	}
	if len(exportTo) == 0 {
		if se, ok := hosts[newScopedFqdn(sourceNS, sourceNS, host)]; ok {
			return se
		}
	}
	for _, e := range exportTo {
		if e == exportToNamespaceLocal {
			e = sourceNS
		}
		if se, ok := hosts[newScopedFqdn(e, sourceNS, host)]; ok {
			return se
		}
	}
	for _, key := range sortedScopedKeys(hosts) { // Istio: map order
		se := hosts[key]
		scope, seHost := key.scopeAndFqdn()
		if !strings.HasPrefix(seHost, "*") || scope != exportToAllNamespaces && scope != sourceNS {
			continue
		}
		if strings.HasSuffix(strings.TrimPrefix(host, "*"), strings.TrimPrefix(seHost, "*")) {
			return se
		}
	}
	return nil
}

// hostMatches is Istio's host.Name.Matches: equal, or either is a
// wildcard covering the other.
func hostMatches(a, b string) bool {
	aWild := strings.HasPrefix(a, "*")
	bWild := strings.HasPrefix(b, "*")
	switch {
	case !aWild && !bWild:
		return a == b
	case aWild && bWild:
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case aWild:
		return strings.HasSuffix(b, a[1:])
	default:
		return strings.HasSuffix(a, b[1:])
	}
}
