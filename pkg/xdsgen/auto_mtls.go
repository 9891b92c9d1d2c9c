package xdsgen

import (
	"fmt"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
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

// endpointTLSTarget is the service cluster whose endpoints get their
// tlsMode metadata.
type endpointTLSTarget struct {
	dr     *model.DestinationRule
	subset string
	port   registry.Port
	svc    *registry.Service
}

// applyEndpointTLSMode writes, on each endpoint of a service cluster that
// is to get mesh mTLS, Istio's metadata {envoy.transport_socket_match:
// {tlsMode: <its tlsMode label>}} (util.AppendLbEndpointMetadata), which
// the cluster's transport_socket_matches select on. groups are the
// registry endpoints behind cla's, in the same order.
func (g *generation) applyEndpointTLSMode(cla *endpoint.ClusterLoadAssignment, groups [][]*registry.Endpoint, t endpointTLSTarget) {
	drMode := drTLSMode(t.dr, t.subset, t.port.Number)
	for i, loc := range cla.GetEndpoints() {
		for j, lbEp := range loc.LbEndpoints {
			ep := groups[i][j]
			mode := endpointTLSMode(ep)
			if mode == TLSModeDisabled || !g.endpointMTLSEnabled(drMode, ep, t) {
				continue
			}
			if lbEp.Metadata == nil {
				lbEp.Metadata = &core.Metadata{FilterMetadata: map[string]*structpbStruct{}}
			}
			lbEp.Metadata.FilterMetadata[TransportSocketMatchKey] = &structpb.Struct{
				Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(mode)}}
		}
	}
}

// endpointMTLSEnabled is Istio's mtlsChecker.checkMtlsEnabled
// (pilot/pkg/xds/endpoints/mtls_checker.go): a DestinationRule tls mode
// for the cluster decides (ISTIO_MUTUAL or not); otherwise an endpoint
// with a sidecar takes mTLS unless its workload's PeerAuthentication is
// DISABLE for its port (the endpoint port, or the service targetPort it
// stands in for, as on the server side).
func (g *generation) endpointMTLSEnabled(drMode *networking.ClientTLSSettings_TLSmode, ep *registry.Endpoint, t endpointTLSTarget) bool {
	if drMode != nil {
		return *drMode == networking.ClientTLSSettings_ISTIO_MUTUAL
	}
	if endpointTLSMode(ep) != TLSModeIstio {
		return false
	}
	ns, _, ok := strings.Cut(ep.Workload, "/")
	if !ok {
		ns = t.svc.Namespace
	}
	pa := g.workloadPeerAuthn(ns, ep.Labels)
	ports := []uint32{ep.Port}
	if tp := t.port.TargetPort; tp != 0 && tp != ep.Port {
		ports = append(ports, tp)
	}
	return pa.ModeForPorts(ports) != model.MTLSDisable
}

// workloadPeerAuthn is the PeerAuthentication of a workload in ns with
// labels, memoised for the push (Generator) or the generation.
func (g *generation) workloadPeerAuthn(ns string, labels map[string]string) model.MergedPeerAuthentication {
	key := ns + "\x00" + model.LabelString(labels) // the policy depends on nothing else
	if g.gen != nil {
		if pa, ok := g.gen.peerAuthn.Load(key); ok {
			return pa.(model.MergedPeerAuthentication)
		}
		pa := g.push.PeerAuthenticationFor(ns, labels)
		g.gen.peerAuthn.Store(key, pa)
		return pa
	}
	pa, ok := g.endpointPeerAuthn[key]
	if !ok {
		pa = g.push.PeerAuthenticationFor(ns, labels)
		if g.endpointPeerAuthn == nil {
			g.endpointPeerAuthn = map[string]model.MergedPeerAuthentication{}
		}
		g.endpointPeerAuthn[key] = pa
	}
	return pa
}

// drTLSMode is Istio's tlsModeForDestinationRule: the tls mode the
// subset's traffic policy (its port-level setting for port first) sets,
// else the rule's (likewise), nil when none sets one.
func drTLSMode(dr *model.DestinationRule, subset string, port uint32) *networking.ClientTLSSettings_TLSmode {
	if dr == nil {
		return nil
	}
	if subset != "" {
		for _, ss := range dr.Spec.Subsets {
			if ss.GetName() == subset {
				if mode := policyTLSMode(ss.GetTrafficPolicy(), port); mode != nil {
					return mode
				}
				break
			}
		}
	}
	return policyTLSMode(dr.Spec.GetTrafficPolicy(), port)
}

// policyTLSMode is Istio's trafficPolicyTLSModeForPort.
func policyTLSMode(tp *networking.TrafficPolicy, port uint32) *networking.ClientTLSSettings_TLSmode {
	if tp == nil {
		return nil
	}
	var mode *networking.ClientTLSSettings_TLSmode
	if tp.Tls != nil {
		mode = &tp.Tls.Mode
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port && pl.Tls != nil {
			mode = &pl.Tls.Mode
			break
		}
	}
	return mode
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
	ts, err := g.meshUpstreamTLS(t.tls, "", g.serviceAccounts(t.tls), meshALPN(b, t.port.Protocol))
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
