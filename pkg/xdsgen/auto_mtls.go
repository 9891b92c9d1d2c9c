package xdsgen

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// Auto mTLS names, as Istio's (pilot/pkg/model: TLSModeLabelName,
// TLSModeLabelShortname, IstioMutualTLSModeLabel, DisabledTLSModeLabel;
// pilot/pkg/networking/util: EnvoyTransportSocketMetadataKey).
const (
	// TLSModeLabel on a workload says whether its sidecar accepts mesh
	// mTLS ("istio") or not ("disabled", the default).
	TLSModeLabel = "security.istio.io/tlsMode"
	// TLSModeIstio is TLSModeLabel's value for a workload with a sidecar.
	TLSModeIstio = "istio"
	// TLSModeDisabled is TLSModeLabel's value (and default) for one without.
	TLSModeDisabled = "disabled"
	// TransportSocketMatchKey is the endpoint filter metadata key a
	// cluster's transport_socket_matches are matched against.
	TransportSocketMatchKey = "envoy.transport_socket_match"
	// tlsModeKey is the field of TransportSocketMatchKey's metadata.
	tlsModeKey = "tlsMode"
	// RawBufferTransportSocket is Envoy's plaintext transport socket.
	RawBufferTransportSocket = "envoy.transport_sockets.raw_buffer"
)

// endpointTLSMode is the endpoint's tlsMode label as Istio reads it into
// IstioEndpoint.TLSMode: the label's value, "disabled" when absent.
func endpointTLSMode(ep *registry.Endpoint) string {
	if v := ep.Labels[TLSModeLabel]; v != "" {
		return v
	}
	return TLSModeDisabled
}

// transportSocketMatchMetadata is the endpoint metadata Istio's
// util.AppendLbEndpointMetadata writes for an endpoint whose tlsMode is
// neither empty nor "disabled": {envoy.transport_socket_match: {tlsMode: <mode>}}.
func transportSocketMatchMetadata(ep *registry.Endpoint) *structpbStruct {
	mode := endpointTLSMode(ep)
	if mode == TLSModeDisabled {
		return nil
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(mode)}}
}

// autoMTLSEnabled is MeshConfig enableAutoMtls, true when unset as in
// Istio's mesh defaults.
func (g *generation) autoMTLSEnabled() bool {
	v := g.push.Mesh.GetEnableAutoMtls()
	return v == nil || v.GetValue()
}

// autoMTLSTarget is a service cluster auto mTLS may apply to.
type autoMTLSTarget struct {
	svc    *registry.Service
	port   registry.Port
	policy *networking.TrafficPolicy
	tls    tlsTarget
	// all are every endpoint of the service port (Istio's
	// ServiceEndpointsByPort with no labels), for passthrough clusters.
	all []*registry.Endpoint
}

// applyAutoMTLS gives a service cluster whose DestinationRule sets no tls
// Istio's automatic mTLS (pilot/pkg/networking/core/cluster_tls.go:
// buildUpstreamTLSSettings with autoDetected ISTIO_MUTUAL, then
// applyUpstreamTLSSettings): not for MESH_EXTERNAL services, nor with
// MeshConfig enableAutoMtls false, nor when the service namespace's
// PeerAuthentication mode is DISABLE (BestEffortInferServiceMTLSMode).
// A regular cluster gets transport_socket_matches, ISTIO_MUTUAL to
// endpoints whose metadata says tlsMode istio and plaintext to the rest;
// an ORIGINAL_DST (passthrough) cluster gets ISTIO_MUTUAL as its one
// transport socket when every endpoint of the service port has a sidecar,
// and none otherwise, as Istio.
func (g *generation) applyAutoMTLS(b *clusterBuild, t autoMTLSTarget) {
	if t.policy.GetTls() != nil || !g.autoMTLSEnabled() || t.svc.MeshExternal {
		return
	}
	passthrough := b.c.GetType() == cluster.Cluster_ORIGINAL_DST
	if passthrough && !allIstioTLSMode(t.all) {
		return
	}
	if g.push.NamespaceMTLSMode(t.svc.Namespace) == model.MTLSDisable {
		return
	}
	ts, err := g.meshUpstreamTLS(t.tls.port, t.tls.subset, t.tls.host, "", g.serviceAccounts(t.tls), b.isHTTP2())
	if err != nil {
		g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("cluster %s: auto mTLS: %v; sent in plaintext", b.c.Name, err))
		return
	}
	if passthrough {
		b.c.TransportSocket = ts
		return
	}
	raw, err := rawBufferTransportSocket()
	if err != nil {
		g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("cluster %s: auto mTLS: %v; sent in plaintext", b.c.Name, err))
		return
	}
	b.c.TransportSocketMatches = []*cluster.Cluster_TransportSocketMatch{{
		Name:            "tlsMode-" + TLSModeIstio,
		Match:           &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(TLSModeIstio)}},
		TransportSocket: ts,
	}, {
		Name:            "tlsMode-" + TLSModeDisabled,
		Match:           &structpb.Struct{},
		TransportSocket: raw,
	}}
}

// allIstioTLSMode says every endpoint has a sidecar (and there is one):
// Istio infers mTLS DISABLE for a passthrough service otherwise.
func allIstioTLSMode(eps []*registry.Endpoint) bool {
	for _, ep := range eps {
		if endpointTLSMode(ep) == TLSModeDisabled {
			return false
		}
	}
	return len(eps) > 0
}

// rawBufferTransportSocket is Istio's xdsfilters.RawBufferTransportSocket.
func rawBufferTransportSocket() (*core.TransportSocket, error) {
	typed, err := anypb.New(&rawbuffer.RawBuffer{})
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: RawBufferTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
}
