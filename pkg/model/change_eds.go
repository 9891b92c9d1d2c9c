package model

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// EndpointsOnly reports whether every config ch changed only moves
// endpoints, so that only the EDS of the returned services' clusters needs
// sending (Istio's EDS-only push: pilot/pkg/xds/eds.go EDSUpdate, full
// push when pilot/pkg/model/endpointshards.go UpdateServiceEndpoints sees
// a new service or changed service accounts). prev is the push context
// ch is relative to. The changes that qualify: WorkloadEntries added,
// removed or changed, and ServiceEntries whose inline endpoints are all
// that changed (Istio's serviceentry controller.go pushServiceUpdates
// skips a config push when only instances changed); the
// services are those selecting an entry's old or new labels in its
// namespace. Not endpoint-only, because sluice puts endpoints into other
// config for them (pkg/xdsgen):
//   - a service not resolved STATIC: DNS clusters carry their endpoints in
//     CDS (clusters.go addServiceCluster, STRICT_DNS load_assignment; Istio's
//     pushServiceEndpointUpdates asks a config push for those too);
//     NONE (and DestinationRule subsets with loadBalancer PASSTHROUGH)
//     are ORIGINAL_DST clusters whose auto mTLS transport depends on
//     every endpoint's tlsMode label (auto_mtls.go allIstioTLSMode);
//   - a change of a service's workload identities (namespace and service
//     account, per label set, since subsets filter by labels): ISTIO_MUTUAL
//     clusters verify the endpoints' SPIFFE IDs (cluster_tls.go
//     serviceAccounts), as Istio's full push on changed service accounts.
//
// A sidecar's inbound listeners also read the endpoints at its own
// address (xdsgen inbound.go inboundProtocol, stats.go endpointAt,
// model WorkloadPorts): InboundDependsOn names the proxies that need a
// full generation even when the change is endpoint-only.
func (pc *PushContext) EndpointsOnly(ch Change, prev *PushContext) (hosts []string, ok bool) {
	if ch.isFull() || prev == nil {
		return nil, false
	}
	affected := map[serviceID]bool{}
	for key := range ch.Configs {
		old, cur := prev.resources[key], pc.resources[key]
		switch key.Kind {
		case config.KindWorkloadEntry:
			for _, v := range []struct {
				reg *registry.Registry
				res *config.Resource
			}{{prev.Registry, old}, {pc.Registry, cur}} {
				if v.res == nil {
					continue
				}
				for _, svc := range v.reg.ServicesSelecting(key.Namespace, registry.WorkloadLabels(v.res)) {
					affected[serviceID{svc.Hostname, svc.Namespace}] = true
				}
			}
		case config.KindPod, config.KindNode, config.KindEndpointSlice:
			// Kubernetes objects feed endpoints only (Istio's
			// endpointslice.go pushEDS: an EDS update, full push on
			// changed service accounts, which edsOnlyService checks).
			for _, v := range []struct {
				reg *registry.Registry
				res *config.Resource
			}{{prev.Registry, old}, {pc.Registry, cur}} {
				if v.res == nil {
					continue
				}
				for _, svc := range v.reg.ServicesFedBy(key) {
					affected[serviceID{svc.Hostname, svc.Namespace}] = true
				}
			}
		case config.KindServiceEntry:
			if !onlyEndpointsDiffer(old, cur) {
				return nil, false
			}
			for _, svc := range pc.ServicesOf(key) {
				affected[serviceID{svc.Hostname, svc.Namespace}] = true
			}
		default:
			return nil, false
		}
	}
	seen := map[string]bool{}
	for id := range affected {
		if !pc.edsOnlyService(prev, id) {
			return nil, false
		}
		if !seen[id.host] {
			seen[id.host] = true
			hosts = append(hosts, id.host)
		}
	}
	sort.Strings(hosts)
	return hosts, true
}

type serviceID struct{ host, namespace string }

// onlyEndpointsDiffer says old and cur are two versions of a ServiceEntry
// differing in spec.endpoints only.
func onlyEndpointsDiffer(old, cur *config.Resource) bool {
	if old == nil || cur == nil || old.APIVersion != cur.APIVersion || old.Created != cur.Created ||
		!maps.Equal(old.Labels, cur.Labels) || !maps.Equal(old.Annotations, cur.Annotations) {
		return false
	}
	a, okA := old.Spec.(*networking.ServiceEntry)
	b, okB := cur.Spec.(*networking.ServiceEntry)
	if !okA || !okB {
		return false
	}
	a, b = proto.Clone(a).(*networking.ServiceEntry), proto.Clone(b).(*networking.ServiceEntry)
	a.Endpoints, b.Endpoints = nil, nil
	return proto.Equal(a, b)
}

// edsOnlyService says the service's clusters (CDS) are the same in prev
// and pc whatever its endpoints did: it is STATIC in both, no
// DestinationRule makes a subset of it PASSTHROUGH, and its workload
// identities per port are unchanged.
func (pc *PushContext) edsOnlyService(prev *PushContext, id serviceID) bool {
	a, b := serviceIn(prev, id), serviceIn(pc, id)
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i].Resolution != registry.ResolutionStatic || b[i].Resolution != registry.ResolutionStatic {
			return false
		}
		if passthroughSubset(prev, id.host) || passthroughSubset(pc, id.host) {
			return false
		}
		for _, p := range b[i].Ports {
			if !maps.Equal(identities(prev.Endpoints(a[i], p.Number)), identities(pc.Endpoints(b[i], p.Number))) {
				return false
			}
		}
	}
	return true
}

func serviceIn(pc *PushContext, id serviceID) []*registry.Service {
	var out []*registry.Service
	for _, svc := range pc.ServicesForHost(id.host) {
		if svc.Namespace == id.namespace {
			out = append(out, svc)
		}
	}
	return out
}

// identities are the endpoints' SPIFFE identity inputs (workload namespace
// and service account, as xdsgen serviceIdentities reads them) with the
// labels subsets select them by.
func identities(eps []*registry.Endpoint) map[string]bool {
	out := map[string]bool{}
	for _, ep := range eps {
		if ep.ServiceAccount == "" {
			continue
		}
		ns := ep.Workload
		if i := strings.IndexByte(ns, '/'); i >= 0 {
			ns = ns[:i]
		}
		out[ns+"/"+ep.ServiceAccount+"|"+LabelString(ep.Labels)] = true
	}
	return out
}

// passthroughSubset says a DestinationRule for host has a subset whose
// load balancer is PASSTHROUGH (an ORIGINAL_DST cluster, xdsgen
// addServiceCluster).
func passthroughSubset(pc *PushContext, host string) bool {
	for _, dr := range pc.destRules {
		if !config.HostMatches(dr.Host, host) {
			continue
		}
		for _, ss := range dr.Spec.Subsets {
			if ss.GetTrafficPolicy().GetLoadBalancer().GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH {
				return true
			}
		}
	}
	return false
}

// InboundDependsOn reports whether proxy p's own inbound listeners read an
// endpoint ch adds, removes or changes: p is a sidecar and one of its
// inbound addresses (or a wildcard one, 0.0.0.0 or ::) is the address and
// port of such an endpoint, in prev or in this push. xdsgen builds an
// inbound port's protocol, its service metadata and its
// PeerAuthentication ports from the endpoints there (inbound.go
// inboundProtocol, stats.go endpointAt, WorkloadPorts), so such a proxy
// needs a full generation even when EndpointsOnly holds. A captured
// sidecar without inbound addresses serves every port of an endpoint at
// its IPs, so any endpoint at one of its IPs counts.
//
// A ztunnel holds no EDS: its workloads are in its Address resources, so
// an endpoint-only change is a full (WDS) push for it.
func (pc *PushContext) InboundDependsOn(p *Proxy, ch Change, prev *PushContext) bool {
	if p.Type == Ztunnel {
		return true
	}
	if p.Type != Sidecar || (len(p.Inbound) == 0 && !p.Captured()) {
		return false
	}
	if ch.isFull() || prev == nil {
		return true
	}
	for key := range ch.Configs {
		if endpointsAtInbound(prev.Registry, prev.resources[key], p) || endpointsAtInbound(pc.Registry, pc.resources[key], p) {
			return true
		}
	}
	return false
}

// endpointsAtInbound says an endpoint res (nil: none) contributes to reg
// is at one of p's inbound addresses.
func endpointsAtInbound(reg *registry.Registry, res *config.Resource, p *Proxy) bool {
	if res == nil {
		return false
	}
	var svcs []*registry.Service
	prefix := res.Namespace + "/" + res.Name
	switch res.Kind {
	case config.KindWorkloadEntry:
		svcs = reg.ServicesSelecting(res.Namespace, registry.WorkloadLabels(res))
	case config.KindServiceEntry, config.KindService:
		svcs = reg.ServicesOf(res.Key())
		prefix = ""
	case config.KindEndpointSlice, config.KindNode:
		svcs = reg.ServicesFedBy(res.Key())
		prefix = ""
	case config.KindPod:
		svcs = reg.ServicesFedBy(res.Key())
	}
	for _, svc := range svcs {
		for _, port := range svc.Ports {
			for _, ep := range reg.Endpoints(svc, port.Number) {
				if prefix != "" && ep.Workload != prefix {
					continue
				}
				if inboundAt(p, ep) {
					return true
				}
			}
		}
	}
	return false
}

func inboundAt(p *Proxy, ep *registry.Endpoint) bool {
	if p.Captured() && len(p.Inbound) == 0 {
		// A captured sidecar's inbound ports are the ports of the
		// endpoints at its IPs (xdsgen capturedInboundPorts).
		return slices.Contains(p.IPs, ep.Address)
	}
	for _, in := range p.Inbound {
		host, port, err := hostport.ParseAddr(in.Address)
		if err != nil {
			return true // unreadable: assume it depends
		}
		if port == ep.Port && (host == ep.Address || host == "0.0.0.0" || host == "::") {
			return true
		}
	}
	return false
}
