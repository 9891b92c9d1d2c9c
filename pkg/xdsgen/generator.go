// Package xdsgen compiles a push context into the Envoy xDS v3 resources
// one proxy needs: listeners, route configurations, clusters and endpoint
// assignments. Generation is a pure function of (push, proxy); a
// Generator shares what several proxies of one push have in common.
package xdsgen

import (
	"fmt"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// Resources is everything generated for one proxy.
type Resources struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
	// Addresses and Authorizations are the workload API (wds.go), a
	// ztunnel's only resources; the lists are shared by every ztunnel of
	// a push.
	Addresses      []*workloadapi.Address
	Authorizations []*security.Authorization
	// Conflicts are config problems found while generating (a Gateway
	// server clashing with another, a missing credential); what they name
	// is left out and the rest is served.
	Conflicts []string
	// OutboundTCPConflicts and InboundListenerConflicts count the
	// conflicts istiod counts in pilot_conflict_outbound_listener_tcp_over_current_tcp
	// (two TCP services on one outbound port) and
	// pilot_conflict_inbound_listener (two inbound listeners on one port).
	OutboundTCPConflicts, InboundListenerConflicts int
	// ViewClusters and ViewEndpoints count the leading Clusters and
	// Endpoints that are a list shared, as one list, by every proxy with
	// the same view of the mesh (shared_view.go); a server can process
	// that list once for all of them.
	ViewClusters, ViewEndpoints int
}

// Well-known names, matching Istio's where Istio has them.
const (
	OutboundListenerName = "virtualOutbound"
	InboundListenerName  = "virtualInbound"
	OutboundRouteName    = "outbound"
	PassthroughCluster   = "PassthroughCluster"
	BlackHoleCluster     = "BlackHoleCluster"
)

// generate fills g.out for g.proxy.
func (g *generation) generate() error {
	switch g.proxy.Type {
	case model.Sidecar:
		g.scope = g.push.SidecarScope(g.proxy)
		if err := g.sidecar(); err != nil {
			return err
		}
	case model.Router:
		if err := g.router(); err != nil {
			return err
		}
	case model.Ztunnel:
		return g.ztunnel() // no listeners for the post-passes
	default:
		return fmt.Errorf("unknown proxy type %q", g.proxy.Type)
	}
	// The post-passes edit listeners only, which are this proxy's own;
	// clusters, endpoints and outbound route tables may be shared with
	// other proxies (shared.go) and are never edited once built.
	if err := g.addStatsFilters(); err != nil {
		return err
	}
	return g.addListenerAccessLogs()
}

// generation carries the inputs of one Generate call.
type generation struct {
	push  *model.PushContext
	proxy *model.Proxy
	out   *Resources
	// scope is the sidecar's Sidecar resource scope; nil (everything
	// visible) for routers, which Sidecars do not apply to.
	scope *model.SidecarScope
	// sec memoises the proxy's security filters (security.go).
	sec *securityFilterSet
	// tracingMemo memoises the tracing block per listener class (tracing.go).
	tracingMemo *tracingSet
	// endpointPeerAuthn caches endpoint workloads' PeerAuthentication
	// (auto_mtls.go).
	endpointPeerAuthn map[string]model.MergedPeerAuthentication
	// accessLogs memoises the access_log per listener class (accesslog.go).
	accessLogs accessLogMemo
	// gen holds the resources shared between proxies of one push
	// (shared.go); nil builds everything for this proxy alone.
	gen *Generator
	// shared are the resources of out that came from gen's caches.
	shared sharedIndex
	// boundInbound are a captured sidecar's inbound ports whose Sidecar
	// ingress listener has captureMode NONE: bound listeners of their own,
	// not chains of virtualInbound (capture_inbound.go).
	boundInbound map[uint32]bool
}

func (g *generation) sidecar() error {
	if g.proxy.Captured() {
		return g.captureSidecar()
	}
	if err := g.sharedClusters(); err != nil {
		return err
	}
	if g.proxy.OutboundAddress != "" {
		als, err := g.accessLog(model.ListenerClassSidecarOutbound)
		if err != nil {
			return err
		}
		l, err := httpListener(listenerOptions{
			Name: OutboundListenerName, Address: g.proxy.OutboundAddress,
			StatPrefix: "outbound", RouteName: OutboundRouteName, Direction: core.TrafficDirection_OUTBOUND,
			Tracing: g.tracing(model.ListenerClassSidecarOutbound), Mesh: g.push.Mesh, Connect: true, AccessLog: als,
		})
		if err != nil {
			return err
		}
		g.out.Listeners = append(g.out.Listeners, l)
		rc, err := g.outboundRoutes()
		if err != nil {
			return err
		}
		g.addSharedRoute(rc)
		if err := g.connectHTTP(); err != nil {
			return err
		}
	}
	if g.proxy.OutboundTCPIP != "" {
		if err := g.outboundTCP(); err != nil {
			return err
		}
	}
	if err := g.boundEgress(); err != nil {
		return err
	}
	return g.inbound()
}

// ClusterName is Istio's outbound cluster name: outbound|port|subset|host.
func ClusterName(direction string, port uint32, subset, host string) string {
	return direction + "|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// ParseClusterName splits an Istio cluster name; ok is false for other names.
func ParseClusterName(name string) (direction string, port uint32, subset, host string, ok bool) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 {
		return "", 0, "", "", false
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return "", 0, "", "", false
	}
	return parts[0], uint32(p), parts[2], parts[3], true
}

func socketAddress(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}
