package xdsgen

import (
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// HTTPProtocolOptionsKey is where Envoy reads a cluster's upstream HTTP options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// defaultConnectTimeout is MeshConfig.connectTimeout's default.
const defaultConnectTimeout = 10 * time.Second

// clusters adds an outbound cluster per visible service port and subset,
// with its endpoints, plus the passthrough and black-hole clusters.
func (g *generation) clusters() {
	for _, svc := range g.push.Services() {
		if !svc.VisibleTo(g.proxy.Namespace) {
			continue
		}
		dr := g.push.DestinationRule(g.proxy.Namespace, svc.Hostname, svc.Namespace)
		for _, port := range svc.Ports {
			eps := g.push.Endpoints(svc, port.Number)
			g.addServiceCluster(svc, port, "", nil, eps)
			if dr == nil {
				continue
			}
			for _, subset := range dr.Spec.Subsets {
				g.addServiceCluster(svc, port, subset.Name, subset.Labels, eps)
			}
		}
	}
	g.out.Clusters = append(g.out.Clusters, passthroughCluster(), blackHoleCluster())
}

func (g *generation) addServiceCluster(svc *registry.Service, port registry.Port, subset string, selector map[string]string, all []*registry.Endpoint) {
	name := ClusterName("outbound", port.Number, subset, svc.Hostname)
	var eps []*registry.Endpoint
	for _, ep := range all {
		if registry.LabelsMatch(selector, ep.Labels) {
			eps = append(eps, ep)
		}
	}
	c := &cluster.Cluster{
		Name:           name,
		ConnectTimeout: g.connectTimeout(),
		LbPolicy:       cluster.Cluster_ROUND_ROBIN,
	}
	switch svc.Resolution {
	case registry.ResolutionDNS:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}
		c.LoadAssignment = loadAssignment(name, eps)
	case registry.ResolutionNone:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
	default:
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_EDS}
		c.EdsClusterConfig = &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name}
		g.out.Endpoints = append(g.out.Endpoints, loadAssignment(name, eps))
	}
	if port.Protocol == registry.ProtocolHTTP2 || port.Protocol == registry.ProtocolGRPC {
		setHTTP2(c)
	}
	g.out.Clusters = append(g.out.Clusters, c)
}

func (g *generation) connectTimeout() *durationpb.Duration {
	if d := g.push.Mesh.GetConnectTimeout(); d != nil && d.AsDuration() > 0 {
		return d
	}
	return durationpb.New(defaultConnectTimeout)
}

// setHTTP2 makes the cluster speak HTTP/2 (h2c) to its endpoints.
func setHTTP2(c *cluster.Cluster) {
	opts := &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{},
				},
			},
		},
	}
	typed, err := anypb.New(opts)
	if err != nil {
		return
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: typed}
}

// loadAssignment groups endpoints by locality, in locality order.
func loadAssignment(name string, eps []*registry.Endpoint) *endpoint.ClusterLoadAssignment {
	byLocality := map[string][]*endpoint.LbEndpoint{}
	for _, ep := range eps {
		weight := ep.Weight
		if weight == 0 {
			weight = 1
		}
		byLocality[ep.Locality] = append(byLocality[ep.Locality], &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: socketAddress(ep.Address, ep.Port),
			}},
			LoadBalancingWeight: wrapperspb.UInt32(weight),
			Metadata:            endpointMetadata(ep),
		})
	}
	localities := make([]string, 0, len(byLocality))
	for l := range byLocality {
		localities = append(localities, l)
	}
	sort.Strings(localities)
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	for _, l := range localities {
		lbEps := byLocality[l]
		var total uint32
		for _, e := range lbEps {
			total += e.LoadBalancingWeight.GetValue()
		}
		cla.Endpoints = append(cla.Endpoints, &endpoint.LocalityLbEndpoints{
			Locality:            model.ParseLocality(l),
			LbEndpoints:         lbEps,
			LoadBalancingWeight: wrapperspb.UInt32(total),
		})
	}
	return cla
}

// endpointMetadata records the workload behind an endpoint under the
// "istio" filter metadata key, as Istio does, for admin output.
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
		LoadAssignment:       loadAssignment(name, []*registry.Endpoint{{Address: host, Port: port, Workload: "app"}}),
	}
}

// passthroughCluster forwards to the destination the client asked for. In
// local mode there is no original destination address, so the destination
// comes from the request's authority (Envoy's use_http_header).
func passthroughCluster() *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 PassthroughCluster,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		LbConfig: &cluster.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &cluster.Cluster_OriginalDstLbConfig{
			UseHttpHeader: true, HttpHeaderName: ":authority",
		}},
	}
}

// blackHoleCluster has no endpoints: traffic sent to it fails.
func blackHoleCluster() *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 BlackHoleCluster,
		ConnectTimeout:       durationpb.New(defaultConnectTimeout),
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
	}
}
