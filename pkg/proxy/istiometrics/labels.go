package istiometrics

import (
	"strings"

	"github.com/sluice-mesh/sluice/internal/hostport"
)

// labelSet is one label combination, resolved when a key is first seen.
type labelSet struct {
	reporter                    string
	src, dst                    *Peer
	srcPrincipal, dstPrincipal  string
	service, serviceName, svcNS string
	protocol, policy            string
	responseCode, grpcStatus    string
	flags                       string
}

// value is the standard value of label name; "" for a name that is not
// a standard label.
func (l *labelSet) value(name string) string {
	switch name {
	case "reporter":
		return l.reporter
	case "source_workload":
		return l.src.Workload
	case "source_workload_namespace":
		return l.src.Namespace
	case "source_principal":
		return l.srcPrincipal
	case "source_app":
		return l.src.App
	case "source_version":
		return l.src.Version
	case "source_cluster":
		return l.src.Cluster
	case "source_canonical_service":
		return l.src.Service
	case "source_canonical_revision":
		return l.src.Revision
	case "destination_workload":
		return l.dst.Workload
	case "destination_workload_namespace":
		return l.dst.Namespace
	case "destination_principal":
		return l.dstPrincipal
	case "destination_app":
		return l.dst.App
	case "destination_version":
		return l.dst.Version
	case "destination_cluster":
		return l.dst.Cluster
	case "destination_canonical_service":
		return l.dst.Service
	case "destination_canonical_revision":
		return l.dst.Revision
	case "destination_service":
		return l.service
	case "destination_service_name":
		return l.serviceName
	case "destination_service_namespace":
		return l.svcNS
	case "request_protocol":
		return l.protocol
	case "response_code":
		return l.responseCode
	case "grpc_response_status":
		return l.grpcStatus
	case "response_flags":
		return l.flags
	case "connection_security_policy":
		return l.policy
	}
	return ""
}

// Service is a destination service as istiod describes it in a cluster's
// metadata (filter_metadata istio "services": host, name, namespace;
// pilot/pkg/networking/core cluster_builder.go addTelemetryMetadata).
type Service struct {
	Host, Name, Namespace string
}

// destination is where a request or connection went, as the stats filter
// names its service: the first service of its cluster's metadata, else
// the host of an outbound|port|subset|host cluster, else (unless the
// config disables the fallback) the request's authority.
type destination struct {
	svc       *Service
	cluster   string
	authority string
}

// sides is what a key knows of the two ends of a request or connection.
type sides struct {
	inbound bool
	peerRaw string // the other side's raw x-envoy-peer-metadata
	// principal is the other side's verified identity: the downstream's
	// (inbound mTLS, with mtls set) or the upstream server's (outbound
	// TLS); local the identity this proxy presented upstream.
	principal, local string
	mtls             bool
}

// resolve fills both sides, the destination service and the security
// policy as Istio's stats filter does
// (istio/proxy source/extensions/filters/http/istio_stats/istio_stats.cc,
// populatePeerInfo and populateFlagsAndConnectionSecurity):
//   - reporter=source (client sidecar, gateway): source is the proxy
//     itself, destination the peer the upstream's answer named;
//     source_principal the first URI SAN of the certificate this proxy
//     sent upstream, destination_principal the server's
//     (uriSanLocalCertificate / uriSanPeerCertificate of the upstream
//     connection; "unknown" for plaintext), the destination's workload
//     namespace the one its principal names (Istio prefers the SAN's);
//     connection_security_policy stays "unknown" (Istio sets it only
//     on the server side);
//   - reporter=destination (server sidecar): source is the peer the
//     request named, destination the proxy itself; with mTLS the policy
//     is mutual_tls, source_principal the client's verified identity and
//     destination_principal the proxy's own; without, none.
func (m *Metrics) resolve(s sides, d destination, protocol string) *labelSet {
	peer := m.peer(s.peerRaw)
	ls := &labelSet{protocol: protocol, flags: "-", srcPrincipal: "unknown", dstPrincipal: "unknown"}
	if s.inbound {
		ls.reporter, ls.src, ls.dst, ls.policy = "destination", peer, m.self, "none"
		if s.mtls {
			ls.policy, ls.srcPrincipal, ls.dstPrincipal = "mutual_tls", s.principal, m.selfMTLS.Principal
		}
	} else {
		ls.reporter, ls.src, ls.dst, ls.policy = "source", m.self, peer, "unknown"
		if s.local != "" {
			ls.srcPrincipal = s.local
		}
		if s.principal != "" {
			ls.dstPrincipal = s.principal
			if ns, ok := principalNamespace(s.principal); ok && ns != peer.Namespace {
				dst := *peer
				dst.Namespace = ns
				ls.dst = &dst
			}
		}
	}
	switch {
	case d.svc != nil:
		ls.service, ls.serviceName, ls.svcNS = d.svc.Host, orUnknown(d.svc.Name), orUnknown(d.svc.Namespace)
	case strings.HasPrefix(d.cluster, "outbound|"):
		ls.service = clusterHost(d.cluster)
		ls.serviceName, ls.svcNS = serviceNameNamespace(ls.service)
	case d.authority != "":
		ls.service = hostport.StripPort(d.authority)
		if s.inbound {
			ls.service = qualify(ls.service, m.self.Namespace)
		}
		ls.serviceName, ls.svcNS = serviceNameNamespace(ls.service)
	}
	if ls.service == "" {
		ls.service, ls.serviceName, ls.svcNS = "unknown", "unknown", "unknown"
	}
	return ls
}

// clusterHost is the service host of an Istio outbound cluster name
// (outbound|port|subset|host); any other name is taken as the request's
// authority (passthrough, no route), as Istio falls back to the Host.
func clusterHost(c string) string {
	if rest, ok := strings.CutPrefix(c, "outbound|"); ok {
		if i := strings.LastIndexByte(rest, '|'); i >= 0 {
			return rest[i+1:]
		}
	}
	return hostport.StripPort(c)
}

// qualify makes an inbound request's authority a service FQDN: a short
// name is the server's namespace's service (Kubernetes' search path
// from the same namespace), name.namespace gets svc.cluster.local.
func qualify(host, ns string) string {
	switch strings.Count(host, ".") {
	case 0:
		if host == "" {
			return ""
		}
		return host + "." + ns + ".svc.cluster.local"
	case 1:
		return host + ".svc.cluster.local"
	}
	return host
}

// serviceNameNamespace splits a Kubernetes service FQDN
// (name.namespace.svc.<domain>) into name and namespace; another host is
// its own name, namespace unknown (Istio takes a ServiceEntry's
// namespace from its registry, which the proxy does not have).
func serviceNameNamespace(host string) (string, string) {
	if host == "" {
		return "unknown", "unknown"
	}
	parts := strings.SplitN(host, ".", 4)
	if len(parts) >= 3 && parts[2] == "svc" {
		return parts[0], parts[1]
	}
	return host, "unknown"
}

// principalNamespace is the namespace a SPIFFE principal names
// (<trust domain>/ns/<namespace>/sa/<service account>), as istio_stats.cc
// getNamespace reads it.
func principalNamespace(principal string) (string, bool) {
	_, rest, ok := strings.Cut(principal, "/ns/")
	if !ok {
		return "", false
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns, ns != ""
}
