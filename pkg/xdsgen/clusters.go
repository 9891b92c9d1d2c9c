package xdsgen

import (
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// HTTPProtocolOptionsKey is where Envoy reads a cluster's upstream HTTP options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// defaultConnectTimeout is MeshConfig.connectTimeout's default.
const defaultConnectTimeout = 10 * time.Second

// clusters adds an outbound cluster per visible service port and subset,
// with its endpoints, plus the passthrough and black-hole clusters.
func (g *generation) clusters() error {
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) || !g.scope.ServiceVisible(svc) {
			continue
		}
		dr := g.serviceDestinationRule(svc)
		for _, port := range svc.Ports {
			// A Sidecar egress listener imports a service on its own port
			// only (Istio's serviceMatchingListenerPort): no cluster for
			// the ports it does not cover.
			if !g.scope.ServicePortVisible(svc, port.Number) {
				continue
			}
			if err := g.addServiceCluster(serviceClusterOf{svc: svc, port: port, dr: dr}); err != nil {
				return err
			}
			if dr == nil {
				continue
			}
			for _, subset := range dr.Spec.Subsets {
				if err := g.addServiceCluster(serviceClusterOf{svc: svc, port: port, dr: dr, subset: subset}); err != nil {
					return err
				}
			}
		}
	}
	g.out.Clusters = append(g.out.Clusters, g.passthroughCluster(), blackHoleCluster())
	if g.proxy.Captured() {
		g.out.Clusters = append(g.out.Clusters, inboundPassthroughCluster())
	}
	return nil
}

// serviceClusterOf names an outbound service cluster: the service, its
// port, the DestinationRule the proxy resolves for it and the subset
// (nil for the service's own cluster).
type serviceClusterOf struct {
	svc    *registry.Service
	port   registry.Port
	dr     *model.DestinationRule
	subset *networking.Subset
}

func (t serviceClusterOf) name() string {
	return ClusterName("outbound", t.port.Number, t.subset.GetName(), t.svc.Hostname)
}

// endpoints are the endpoints of the service port the subset selects.
func (t serviceClusterOf) endpoints(push *model.PushContext) (all, eps []*registry.Endpoint) {
	all = push.Endpoints(t.svc, t.port.Number)
	for _, ep := range all {
		if registry.LabelsMatch(t.subset.GetLabels(), ep.Labels) {
			eps = append(eps, ep)
		}
	}
	return all, eps
}

// addServiceCluster adds the cluster outbound|port|subset|host and, for
// an EDS cluster, its endpoints as this proxy sees them; both shared with
// the other proxies of the push that see them the same (shared_keys.go).
func (g *generation) addServiceCluster(t serviceClusterOf) error {
	c, err := g.serviceCluster(t)
	if err != nil {
		return err
	}
	g.out.Conflicts = append(g.out.Conflicts, c.conflicts...)
	g.addSharedCluster(c.cluster)
	if c.cluster.GetType() != cluster.Cluster_EDS {
		// PASSTHROUGH on the service's policy turns the cluster into an
		// ORIGINAL_DST one; only real EDS clusters get endpoints.
		return nil
	}
	cla, err := g.serviceEndpoints(t)
	if err != nil {
		return err
	}
	g.addSharedEndpoints(cla)
	return nil
}

// buildServiceCluster builds the cluster outbound|port|subset|host with
// the DestinationRule's traffic policy for that port and subset. Its
// endpoints, for EDS clusters, are buildServiceEndpoints'.
func (g *generation) buildServiceCluster(t serviceClusterOf) *cluster.Cluster {
	svc, port, dr, subset := t.svc, t.port, t.dr, t.subset
	subsetName := subset.GetName()
	name := t.name()
	all, eps := t.endpoints(g.push)
	policy := mergedPolicy(dr, port.Number, subsetName)
	b := &clusterBuild{c: &cluster.Cluster{
		Name:           name,
		ConnectTimeout: g.connectTimeout(),
		CommonLbConfig: &cluster.Cluster_CommonLbConfig{},
	}}
	c := b.c
	passthrough := subset.GetTrafficPolicy().GetLoadBalancer().GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH
	switch {
	case svc.Resolution == registry.ResolutionNone || passthrough:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
	case svc.Resolution == registry.ResolutionDNS:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
		var dnsGroups [][]*registry.Endpoint
		c.LoadAssignment, dnsGroups = loadAssignment(name, eps)
		g.applyEndpointTLSMode(c.LoadAssignment, dnsGroups, endpointTLSTarget{dr: dr, subset: subsetName, port: port, svc: svc})
	default:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
	}
	if port.Protocol == registry.ProtocolHTTP2 || port.Protocol == registry.ProtocolGRPC {
		b.setHTTP2()
	}
	g.applyTrafficPolicy(b, policy, &port)
	target := tlsTarget{port: port.Number, protocol: port.Protocol, subset: subsetName, host: svc.Hostname, endpoints: eps,
		external: svc.Source.Kind == config.KindServiceEntry, sans: svc.SubjectAltNames}
	g.applyUpstreamTLS(b, policy.GetTls(), dr, target)
	g.applyAutoMTLS(b, autoMTLSTarget{svc: svc, port: port, policy: policy, tls: target, all: all})
	if dr != nil {
		c.Metadata = addConfigInfoMetadata(c.Metadata, dr.Resource)
		addSubsetToMetadata(c.Metadata, subsetName)
	}
	if c.GetType() == cluster.Cluster_EDS {
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name}
	}
	setClusterServices(c, []*registry.Service{svc}) // stats.go
	return b.finish()
}

// buildServiceEndpoints builds an EDS service cluster's endpoints as this
// proxy sees them (locality priorities and weights).
func (g *generation) buildServiceEndpoints(t serviceClusterOf) *endpoint.ClusterLoadAssignment {
	subsetName := t.subset.GetName()
	_, eps := t.endpoints(g.push)
	cla, groups := loadAssignment(t.name(), eps)
	g.applyEndpointTLSMode(cla, groups, endpointTLSTarget{dr: t.dr, subset: subsetName, port: t.port, svc: t.svc})
	g.applyEndpointLocality(cla, groups, mergedPolicy(t.dr, t.port.Number, subsetName))
	return cla
}

func (g *generation) connectTimeout() *durationpb.Duration {
	if d := g.push.Mesh.GetConnectTimeout(); d != nil && d.AsDuration() > 0 {
		return d
	}
	return durationpb.New(defaultConnectTimeout)
}

// loadAssignment groups endpoints by locality, in locality order, and
// returns the registry endpoints behind each group.
func loadAssignment(name string, eps []*registry.Endpoint) (*endpoint.ClusterLoadAssignment, [][]*registry.Endpoint) {
	byLocality := map[string][]*registry.Endpoint{}
	for _, ep := range eps {
		byLocality[ep.Locality] = append(byLocality[ep.Locality], ep)
	}
	localities := make([]string, 0, len(byLocality))
	for l := range byLocality {
		localities = append(localities, l)
	}
	sort.Strings(localities)
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	groups := make([][]*registry.Endpoint, 0, len(localities))
	for _, l := range localities {
		group := byLocality[l]
		var total uint32
		var lbEps []*endpoint.LbEndpoint
		for _, ep := range group {
			weight := ep.Weight
			if weight == 0 {
				weight = 1
			}
			total += weight
			lbEps = append(lbEps, &endpoint.LbEndpoint{
				HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: socketAddress(ep.Address, ep.Port),
				}},
				LoadBalancingWeight: wrapperspb.UInt32(weight),
				Metadata:            endpointMetadata(ep),
			})
		}
		cla.Endpoints = append(cla.Endpoints, &endpoint.LocalityLbEndpoints{
			Locality:            model.ParseLocality(l),
			LbEndpoints:         lbEps,
			LoadBalancingWeight: wrapperspb.UInt32(total),
		})
		groups = append(groups, group)
	}
	return cla, groups
}

// endpointMetadata records the workload behind an endpoint under the
// "istio" filter metadata key, as Istio does, for admin output. Service
// clusters add its tlsMode (applyEndpointTLSMode).
func endpointMetadata(ep *registry.Endpoint) *core.Metadata {
	fields := map[string]any{"workload": ep.Workload}
	if ep.ServiceAccount != "" {
		fields["service_account"] = ep.ServiceAccount
	}
	s, err := structOf(fields)
	if err != nil {
		return nil
	}
	return &core.Metadata{FilterMetadata: map[string]*structpbStruct{"istio": s}}
}

func staticCluster(name, host string, port uint32) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		LoadAssignment:       staticAssignment(name, host, port),
	}
}

// passthroughCluster forwards to the destination the client asked for. In
// local mode there is no original destination address, so the destination
// comes from the request's authority (Envoy's use_http_header); a captured
// sidecar's is Istio's, the connection's original destination. Like
// Istio's, it gets the default connection pool (circuit breakers with no
// limits).
func (g *generation) passthroughCluster() *cluster.Cluster {
	b := &clusterBuild{c: &cluster.Cluster{
		Name:                 PassthroughCluster,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
	}}
	if !g.proxy.Captured() {
		b.c.LbConfig = &cluster.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &cluster.Cluster_OriginalDstLbConfig{
			UseHttpHeader: true, HttpHeaderName: ":authority",
		}}
	}
	g.applyConnectionPool(b, &networking.ConnectionPoolSettings{})
	return b.finish()
}

// inboundPassthroughCluster is Istio's InboundPassthroughCluster
// (buildInboundPassthroughCluster): captured inbound connections to a
// port the workload serves no service on go to their original destination,
// from 127.0.0.6 so the capture does not send them back to the sidecar.
func inboundPassthroughCluster() *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 InboundPassthroughCluster,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		UpstreamBindConfig:   passthroughBind(),
	}
}

// passthroughBind is the upstream_bind_config of the inbound clusters that
// reach the workload at its own address (Istio's passThroughBindIPs).
func passthroughBind() *core.BindConfig {
	return &core.BindConfig{SourceAddress: &core.SocketAddress{
		Address: inboundPassthroughBindIPv4, PortSpecifier: &core.SocketAddress_PortValue{PortValue: 0},
	}}
}

// staticAssignment is the one-endpoint assignment of a static cluster.
func staticAssignment(name, host string, port uint32) *endpoint.ClusterLoadAssignment {
	cla, _ := loadAssignment(name, []*registry.Endpoint{{Address: host, Port: port, Workload: "app"}})
	return cla
}

// blackHoleCluster has no endpoints: traffic sent to it fails.
func blackHoleCluster() *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 BlackHoleCluster,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
	}
}
