package istiometrics

import (
	"encoding/base64"
	"fmt"
	"net/http"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/telemetryexpr"
)

// The headers of Istio's HTTP metadata exchange (istio/proxy
// extensions/metadata_exchange, and its successor peer_metadata's header
// propagation): the peer's node ID, and its node metadata as the base64
// (standard encoding) of a serialized google.protobuf.Struct.
const (
	HeaderPeerMetadataID = "X-Envoy-Peer-Metadata-Id"
	HeaderPeerMetadata   = "X-Envoy-Peer-Metadata"
)

// DefaultClusterID is Istio's CLUSTER_ID when none is configured
// (pilot's features.ClusterName default "Kubernetes").
const DefaultClusterID = "Kubernetes"

// Peer is one workload's identity as the standard metrics label it: its
// own (source on a client sidecar, destination on a server sidecar) or
// the other side's, read from the metadata exchange. Its fields are what
// the peer attributes of value expressions read (upstream_peer.app,
// downstream_peer.workload; Service and Revision are the canonical
// service and revision).
type Peer struct {
	telemetryexpr.Peer
	Principal string
}

// unknownPeer is a side nothing is known of.
var unknownPeer = &Peer{Peer: telemetryexpr.Peer{Workload: "unknown", Namespace: "unknown", App: "unknown",
	Version: "unknown", Service: "unknown", Revision: "latest", Cluster: "unknown"}, Principal: "unknown"}

// newPeer fills the labelled identity from what Istio's node metadata
// carries: canonical service and revision as Istio derives them
// (pkg/model/labels CanonicalService/CanonicalRevision in
// pilot/pkg/model: service.istio.io/canonical-name, then
// app.kubernetes.io/name, then app, then the workload name; revision from
// service.istio.io/canonical-revision, app.kubernetes.io/version, version,
// else "latest").
func newPeer(name, workload, namespace, cluster string, labels map[string]string) *Peer {
	p := &Peer{Peer: telemetryexpr.Peer{Name: name, Workload: orUnknown(workload), Namespace: orUnknown(namespace),
		Cluster: orUnknown(cluster), App: orUnknown(labels["app"]), Version: orUnknown(labels["version"]), Labels: labels},
		Principal: "unknown"}
	p.Service = firstOf(labels["service.istio.io/canonical-name"], labels["app.kubernetes.io/name"], labels["app"], workload)
	p.Revision = firstOf(labels["service.istio.io/canonical-revision"], labels["app.kubernetes.io/version"], labels["version"], "latest")
	return p
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return "unknown"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// encodeSelf is the proxy's own x-envoy-peer-metadata value: Istio's node
// metadata fields (NAME, NAMESPACE, LABELS, WORKLOAD_NAME, CLUSTER_ID,
// SERVICE_ACCOUNT, MESH_ID) in a protobuf Struct, serialized
// deterministically and base64-encoded.
func encodeSelf(id model.Proxy, workload, cluster string) (string, error) {
	labels := map[string]any{}
	for k, v := range id.Labels {
		labels[k] = v
	}
	sa := id.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	st, err := structpb.NewStruct(map[string]any{
		"NAME": id.Name, "NAMESPACE": id.Namespace, "LABELS": labels, "WORKLOAD_NAME": workload,
		"CLUSTER_ID": cluster, "SERVICE_ACCOUNT": sa, "MESH_ID": "cluster.local",
	})
	if err != nil {
		return "", fmt.Errorf("istiometrics: peer metadata of %s: %w", id.Name, err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("istiometrics: peer metadata of %s: %w", id.Name, err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// decodePeer reads a peer's x-envoy-peer-metadata value; a value that is
// not base64 of a Struct is an error (the peer stays unknown).
func decodePeer(v string) (*Peer, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("istiometrics: peer metadata: %w", err)
	}
	var st structpb.Struct
	if err := proto.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("istiometrics: peer metadata: %w", err)
	}
	f := st.GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	labels := map[string]string{}
	for k, lv := range f["LABELS"].GetStructValue().GetFields() {
		labels[k] = lv.GetStringValue()
	}
	workload := firstOf(str("WORKLOAD_NAME"), str("NAME"))
	return newPeer(str("NAME"), workload, str("NAMESPACE"), str("CLUSTER_ID"), labels), nil
}

// TakePeer removes the metadata exchange headers from h (a request the
// server sidecar received, or a response the client sidecar received, as
// Istio strips them) and returns the peer metadata value ("" when absent).
func TakePeer(h http.Header) string {
	v := h[HeaderPeerMetadata]
	if v == nil && h[HeaderPeerMetadataID] == nil {
		return ""
	}
	delete(h, HeaderPeerMetadata)
	delete(h, HeaderPeerMetadataID)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
