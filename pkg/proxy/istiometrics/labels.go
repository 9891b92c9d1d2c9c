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

// values are the label values in Labels' order; http false leaves out
// the response's labels (the TCP metrics' set).
func (l *labelSet) values(http bool) []string {
	v := make([]string, 0, len(Labels))
	v = append(v, l.reporter,
		l.src.Workload, l.src.Namespace, l.srcPrincipal, l.src.App, l.src.Version, l.src.Cluster,
		l.dst.Workload, l.dst.Namespace, l.dstPrincipal, l.dst.App, l.dst.Version,
		l.service, l.serviceName, l.svcNS, l.dst.Cluster, l.protocol)
	if http {
		v = append(v, l.responseCode, l.grpcStatus)
	}
	v = append(v, l.flags, l.policy,
		l.src.CanonicalService, l.dst.CanonicalService, l.src.CanonicalRevision, l.dst.CanonicalRevision)
	return v
}

// resolve fills both sides, the destination service and the security
// policy as Istio's stats filter does
// (istio/proxy source/extensions/filters/http/istio_stats):
//   - reporter=source (client sidecar, gateway): source is the proxy
//     itself, destination the peer the upstream's answer named;
//     connection_security_policy "unknown" and principals "unknown" (the
//     client side does not report its upstream TLS);
//   - reporter=destination (server sidecar): source is the peer the
//     request named, destination the proxy itself; with mTLS the policy
//     is mutual_tls, source_principal the client's verified identity and
//     destination_principal the proxy's own; without, none.
func (m *Metrics) resolve(inbound bool, peerRaw, principal string, mtls bool, service, protocol string) *labelSet {
	peer := m.peer(peerRaw)
	ls := &labelSet{protocol: protocol, flags: "-", srcPrincipal: "unknown", dstPrincipal: "unknown"}
	if inbound {
		ls.reporter, ls.src, ls.dst, ls.policy = "destination", peer, m.self, "none"
		if mtls {
			ls.policy, ls.srcPrincipal, ls.dstPrincipal = "mutual_tls", principal, m.selfMTLS.Principal
		}
		ls.service = qualify(hostport.StripPort(service), m.self.Namespace)
	} else {
		ls.reporter, ls.src, ls.dst, ls.policy = "source", m.self, peer, "unknown"
		ls.service = clusterHost(service)
	}
	ls.serviceName, ls.svcNS = serviceNameNamespace(ls.service)
	if ls.service == "" {
		ls.service = "unknown"
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
