package ztunnel

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// netAddr is an address on a network: istiod's alias key "network/IP"
// (pkg/workloadapi/workload.proto, Address).
type netAddr struct {
	network string
	ip      netip.Addr
}

// workload is one WDS Workload with its addresses parsed.
type workload struct {
	*workloadapi.Workload
	ips []netip.Addr
}

// identity is the workload's SPIFFE ID, as ztunnel's Identity::Spiffe
// (trust domain, namespace, service account).
func (w *workload) identity(defaultTD string) string {
	td := w.GetTrustDomain()
	if td == "" {
		td = defaultTD
	}
	return "spiffe://" + td + "/ns/" + w.GetNamespace() + "/sa/" + w.GetServiceAccount()
}

// hbone tells whether the workload takes HBONE (it is captured by a node
// proxy, istiod's tunnel_protocol).
func (w *workload) hbone() bool { return w.GetTunnelProtocol() == workloadapi.TunnelProtocol_HBONE }

// endpoint is a workload behind a service, with the workload's own port
// mapping for it (Workload.services).
type endpoint struct {
	wl    *workload
	ports map[uint32]uint32
}

// service is one WDS Service with its endpoints: the workloads whose
// services map names it (ztunnel builds service endpoints the same way,
// src/state/service.rs).
type service struct {
	*workloadapi.Service
	key       string // namespace/hostname
	ports     map[uint32]uint32
	endpoints []endpoint
}

// index is the node proxy's view of the mesh: every Address and
// Authorization the control plane sent, indexed for the per-connection
// lookups. It is immutable once built; a new WDS response builds a new
// one (the previous stays in force when the response is refused).
type index struct {
	workloads map[string]*workload // by uid
	byAddr    map[netAddr]*workload
	services  map[string]*service // by namespace/hostname
	byVIP     map[netAddr]*service
	policies  map[string]*policy   // by namespace/name
	byScope   map[string][]*policy // NAMESPACE scope by namespace; GLOBAL under ""
}

// buildIndex indexes the resources by name; a malformed one fails the
// whole response (it is NACKed naming the resource).
func buildIndex(addrs map[string]*workloadapi.Address, authz map[string]*security.Authorization) (*index, error) {
	ix := &index{workloads: map[string]*workload{}, byAddr: map[netAddr]*workload{},
		services: map[string]*service{}, byVIP: map[netAddr]*service{},
		policies: map[string]*policy{}, byScope: map[string][]*policy{}}
	for _, name := range sortedKeys(addrs) {
		if err := ix.addAddress(name, addrs[name]); err != nil {
			return nil, fmt.Errorf("address %q: %w", name, err)
		}
	}
	for _, w := range sortedWorkloads(ix.workloads) {
		for key, pl := range w.GetServices() {
			svc := ix.services[key]
			if svc == nil {
				continue // the service is not (yet) known: no endpoint of it
			}
			ep := endpoint{wl: w, ports: map[uint32]uint32{}}
			for _, p := range pl.GetPorts() {
				ep.ports[p.GetServicePort()] = p.GetTargetPort()
			}
			svc.endpoints = append(svc.endpoints, ep)
		}
	}
	for _, name := range sortedKeys(authz) {
		p, err := compilePolicy(authz[name])
		if err != nil {
			return nil, fmt.Errorf("authorization %q: %w", name, err)
		}
		ix.policies[p.key] = p
		switch p.scope {
		case security.Scope_GLOBAL:
			ix.byScope[""] = append(ix.byScope[""], p)
		case security.Scope_NAMESPACE:
			ix.byScope[p.namespace] = append(ix.byScope[p.namespace], p)
		}
	}
	return ix, nil
}

func (ix *index) addAddress(name string, a *workloadapi.Address) error {
	switch t := a.GetType().(type) {
	case *workloadapi.Address_Workload:
		w := &workload{Workload: t.Workload}
		if err := unsupportedWorkload(w.Workload); err != nil {
			return err
		}
		for i, b := range w.GetAddresses() {
			ip, ok := netip.AddrFromSlice(b)
			if !ok {
				return fmt.Errorf("workload.addresses[%d]: %d bytes is not an IP address", i, len(b))
			}
			ip = ip.Unmap()
			w.ips = append(w.ips, ip)
			ix.byAddr[netAddr{w.GetNetwork(), ip}] = w
		}
		ix.workloads[w.GetUid()] = w
	case *workloadapi.Address_Service:
		s := t.Service
		if err := unsupportedService(s); err != nil {
			return err
		}
		svc := &service{Service: s, key: s.GetNamespace() + "/" + s.GetHostname(), ports: map[uint32]uint32{}}
		for _, p := range s.GetPorts() {
			svc.ports[p.GetServicePort()] = p.GetTargetPort()
		}
		for i, na := range s.GetAddresses() {
			ip, ok := netip.AddrFromSlice(na.GetAddress())
			if !ok {
				return fmt.Errorf("service.addresses[%d]: %d bytes is not an IP address", i, len(na.GetAddress()))
			}
			ix.byVIP[netAddr{na.GetNetwork(), ip.Unmap()}] = svc
		}
		ix.services[svc.key] = svc
	default:
		return fmt.Errorf("neither a workload nor a service")
	}
	return nil
}

// unsupportedWorkload refuses what this node proxy cannot honour rather
// than ignoring it: traffic to such a workload would bypass what the
// control plane asked for (a waypoint's L7 policy, a network gateway).
func unsupportedWorkload(w *workloadapi.Workload) error {
	switch {
	case w.GetWaypoint() != nil:
		return fmt.Errorf("workload.waypoint: waypoints are not supported by sluice's node proxy yet")
	case w.GetNetworkGateway() != nil:
		return fmt.Errorf("workload.network_gateway: multi-network is not supported by sluice's node proxy")
	case len(w.GetExtensions()) > 0:
		return fmt.Errorf("workload.extensions: %s not understood", w.GetExtensions()[0].GetName())
	case w.GetTunnelProtocol() == workloadapi.TunnelProtocol_LEGACY_ISTIO_MTLS:
		return fmt.Errorf("workload.tunnel_protocol: LEGACY_ISTIO_MTLS is not supported")
	}
	return nil
}

func unsupportedService(s *workloadapi.Service) error {
	switch {
	case s.GetWaypoint() != nil || len(s.GetWeightedWaypoints()) > 0:
		return fmt.Errorf("service.waypoint: waypoints are not supported by sluice's node proxy yet")
	case len(s.GetExtensions()) > 0:
		return fmt.Errorf("service.extensions: %s not understood", s.GetExtensions()[0].GetName())
	}
	return nil
}

// upstream is where an outbound connection goes: a workload's port, or
// (wl nil) its original destination unchanged.
type upstream struct {
	wl      *workload
	ip      netip.Addr
	port    uint32
	service *service
}

// findUpstream resolves an outbound destination as ztunnel's
// find_upstream (src/state.rs): a service VIP picks one of its healthy
// endpoints and maps the port (the endpoint's own target port, else the
// service's); a workload address goes to that workload; anything else is
// passed through to where the app sent it. ok is false when the address
// is a service with no usable endpoint (the connection is refused).
func (ix *index) findUpstream(src *workload, dst netip.AddrPort) (upstream, bool) {
	network := src.GetNetwork()
	key := netAddr{network, dst.Addr().Unmap()}
	if svc := ix.byVIP[key]; svc != nil {
		if lb := svc.GetLoadBalancing(); lb != nil && lb.GetMode() == workloadapi.LoadBalancing_PASSTHROUGH {
			return upstream{ip: dst.Addr(), port: uint32(dst.Port())}, true
		}
		return svc.pick(src, uint32(dst.Port()))
	}
	if wl := ix.byAddr[key]; wl != nil {
		return upstream{wl: wl, ip: key.ip, port: uint32(dst.Port())}, true
	}
	return upstream{ip: dst.Addr(), port: uint32(dst.Port())}, true
}

// pick is ztunnel's load_balance: a random endpoint with an address on
// the caller's network that has the port, healthy unless the service's
// health policy allows all; in the service's STRICT or FAILOVER mode
// only the endpoints of the best locality rank (lb.go).
func (s *service) pick(src *workload, svcPort uint32) (upstream, bool) {
	target, known := s.ports[svcPort]
	if !known {
		return upstream{}, false
	}
	lb := s.GetLoadBalancing()
	allowUnhealthy := lb.GetHealthPolicy() == workloadapi.LoadBalancing_ALLOW_ALL
	var ok []endpoint
	for _, ep := range s.endpoints {
		_, mapped := ep.ports[svcPort]
		if (!allowUnhealthy && ep.wl.GetStatus() != workloadapi.WorkloadStatus_HEALTHY) || len(ep.wl.ips) == 0 ||
			ep.wl.GetNetwork() != src.GetNetwork() || (target == 0 && !mapped) {
			continue
		}
		ok = append(ok, ep)
	}
	if m := lb.GetMode(); m == workloadapi.LoadBalancing_STRICT || m == workloadapi.LoadBalancing_FAILOVER {
		ok = bestRanked(ok, src, lb)
	}
	if len(ok) == 0 {
		return upstream{}, false
	}
	ep := ok[rand.IntN(len(ok))]
	port := target
	if p, mapped := ep.ports[svcPort]; mapped && p != 0 {
		port = p
	}
	return upstream{wl: ep.wl, ip: ep.wl.ips[0], port: port, service: s}, true
}

// workloadByName finds a workload by namespace and name (how a pod
// handed to the node proxy is matched to what the control plane knows).
func (ix *index) workloadByName(namespace, name string) *workload {
	for _, w := range ix.workloads {
		if w.GetNamespace() == namespace && w.GetName() == name {
			return w
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedWorkloads(m map[string]*workload) []*workload {
	out := make([]*workload, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

// parseSpiffe splits spiffe://td/ns/N/sa/S.
func parseSpiffe(id string) (td, ns, sa string, ok bool) {
	rest, found := strings.CutPrefix(id, "spiffe://")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[4], true
}
