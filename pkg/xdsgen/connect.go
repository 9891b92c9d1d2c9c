package xdsgen

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// CONNECT on the outbound listener: a local app may use its sidecar as an
// HTTP(S) forward proxy (HTTPS_PROXY=http://127.0.0.1:15001, curl -x).
// The tunnel to host:port is routed as captured TCP to host:port is on
// Kubernetes, in Envoy's terms
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/http/upgrades#tunneling-tcp-over-http):
// the connection manager lists CONNECT in upgrade_configs, and every
// opaque service port gets virtual hosts whose domains are host:port (a
// CONNECT authority always carries its port) with one connect_matcher
// route that terminates CONNECT (upgrade_configs CONNECT with an empty
// connect_config) and sends the tunnel to the port's cluster:
//   - TCP ports: the tcp route of the host's VirtualService that applies
//     on the port (weighted clusters for splits), else the service's cluster;
//   - TLS ports: per tls route of the VirtualService, a virtual host whose
//     domains are the route's sniHosts (the CONNECT authority's host
//     stands in for the SNI the client will send: an HTTPS client asks
//     for the host it names), then the service's own hosts to its cluster.
//   - HTTP ports: captured TCP on an HTTP port is parsed as HTTP and routed
//     by the HTTP route table, so the tunnel goes to the cluster
//     ConnectHTTPCluster, whose one endpoint is the internal listener
//     ConnectHTTPListener (Envoy's internal listeners: an
//     envoy_internal_address endpoint naming a listener with
//     internal_listener set); that listener's connection manager serves the
//     tunnel's bytes with the outbound route table, so VirtualService http
//     routes apply inside the tunnel. Envoy needs the
//     envoy.bootstrap.internal_listener bootstrap extension for this.
// Unknown authorities fall to the catch-all: the passthrough cluster under
// ALLOW_ANY (the destination is the authority), 502 under REGISTRY_ONLY.
// Which hosts and ports resolve is the same visible registry as for HTTP:
// exportTo, Sidecar egress hosts and ports, short Kubernetes names.

// Names of the internal listener serving CONNECT tunnels to HTTP ports,
// and of the cluster that reaches it.
const (
	ConnectHTTPListener = "virtualOutboundConnect"
	ConnectHTTPCluster  = "InternalOutboundConnect"
)

// connectHTTP adds the internal listener that serves CONNECT tunnels to
// HTTP ports as HTTP with the outbound route table, and its cluster.
func (g *generation) connectHTTP() error {
	als, err := g.accessLog(model.ListenerClassSidecarOutbound)
	if err != nil {
		return err
	}
	l, err := internalHTTPListener(listenerOptions{
		Name: ConnectHTTPListener, StatPrefix: "outbound_connect", RouteName: OutboundRouteName,
		Direction: core.TrafficDirection_OUTBOUND, Tracing: g.tracing(model.ListenerClassSidecarOutbound), Mesh: g.push.Mesh, AccessLog: als,
		// The same route table, so the same upgrades: Envoy takes an
		// upgrade only when the connection manager lists its type.
		Connect: true,
	})
	if err != nil {
		return err
	}
	g.out.Listeners = append(g.out.Listeners, l)
	g.out.Clusters = append(g.out.Clusters, &cluster.Cluster{
		Name:                 ConnectHTTPCluster,
		ConnectTimeout:       g.connectTimeout(),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: ConnectHTTPCluster, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_EnvoyInternalAddress{EnvoyInternalAddress: &core.EnvoyInternalAddress{
					AddressNameSpecifier: &core.EnvoyInternalAddress_ServerListenerName{ServerListenerName: ConnectHTTPListener},
				}}},
			}}}},
		}}},
	})
	return nil
}

// ConnectUpgrade is the upgrade type that lets CONNECT requests reach the
// routes.
const ConnectUpgrade = "CONNECT"

// connectMatch matches CONNECT requests only.
func connectMatch() *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_ConnectMatcher_{ConnectMatcher: &route.RouteMatch_ConnectMatcher{}}}
}

// connectRoute terminates CONNECT and tunnels to target.
func connectRoute(name string, target tcpTarget) *route.Route {
	ra := &route.RouteAction{
		Timeout: zeroDuration(),
		UpgradeConfigs: []*route.RouteAction_UpgradeConfig{{
			UpgradeType: ConnectUpgrade, ConnectConfig: &route.RouteAction_UpgradeConfig_ConnectConfig{},
		}},
	}
	if len(target.weighted) > 0 {
		wc := &route.WeightedCluster{}
		for _, w := range target.weighted {
			wc.Clusters = append(wc.Clusters, &route.WeightedCluster_ClusterWeight{Name: w.Name, Weight: wrapUint32(w.Weight)})
		}
		ra.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: wc}
	} else {
		ra.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: target.cluster}
	}
	return &route.Route{Name: name, Match: connectMatch(), Action: &route.Route_Route{Route: ra}}
}

// connectVirtualHosts are the CONNECT virtual hosts of one opaque port of
// svc. Domains already claimed by an earlier virtual host are skipped.
func (g *generation) connectVirtualHosts(used map[string]bool, svc *registry.Service, port registry.Port, vsList []*model.VirtualService) []*route.VirtualHost {
	vs := g.portVirtualService(virtualServiceFor(vsList, svc.Hostname), svc.Hostname, port.Number)
	mc := tcpMatchContext{port: port.Number, gateway: model.GatewayMesh}
	own := tcpTarget{cluster: ClusterName("outbound", port.Number, "", svc.Hostname)}
	var out []*route.VirtualHost
	if port.Protocol == registry.ProtocolTLS || port.Protocol == registry.ProtocolHTTPS {
		if vs != nil {
			for _, st := range g.tlsRouteTargets([]*model.VirtualService{vs}, mc, nil) {
				if d := claimDomains(used, st.names, port.Number, false); len(d) > 0 {
					name := fmt.Sprintf("connect:%s:%d", st.names[0], port.Number)
					out = append(out, &route.VirtualHost{Name: name, Domains: d, Routes: []*route.Route{connectRoute(name, st.target)}})
				}
			}
		}
	} else if vs != nil {
		if t, ok := g.tcpRouteTarget([]*model.VirtualService{vs}, mc); ok {
			own = t
		}
	}
	name := fmt.Sprintf("connect:%s:%d", svc.Hostname, port.Number)
	if d := claimDomains(used, hostAliases(svc.Hostname, g.proxy.Namespace, svc.Addresses), port.Number, false); len(d) > 0 {
		out = append(out, &route.VirtualHost{Name: name, Domains: d, Routes: []*route.Route{connectRoute(name, own)}})
	}
	return out
}

// catchAllConnect is the catch-all's CONNECT route: through to the
// authority under ALLOW_ANY, refused with 502 under REGISTRY_ONLY (as the
// block_all virtual host refuses HTTP; Istio sends unknown TCP to the
// BlackHoleCluster).
func catchAllConnect(allow bool) *route.Route {
	if allow {
		return connectRoute("allow_any_connect", tcpTarget{cluster: PassthroughCluster})
	}
	return &route.Route{
		Name: "block_all_connect", Match: connectMatch(),
		Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 502}},
	}
}
