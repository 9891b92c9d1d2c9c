package dataplane

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// A cluster's transport_socket_matches (Envoy's
// TransportSocketMatch, what Istio's auto mTLS generates: "tlsMode-istio"
// ISTIO_MUTUAL for endpoints labelled security.istio.io/tlsMode=istio,
// then "tlsMode-disabled" plaintext): per host, the first entry whose
// match fields all equal the host's filter_metadata
// "envoy.transport_socket_match" chooses the transport; a host no entry
// matches uses the cluster's transport_socket.

// transportSocketMatchKey is the endpoint metadata the matches read.
const transportSocketMatchKey = "envoy.transport_socket_match"

// socketMatch is one compiled TransportSocketMatch.
type socketMatch struct {
	name      string
	match     map[string]*structpb.Value
	transport *upstream.Transport
}

// transportSet makes a cluster's transports, reusing the previous
// cluster's transport (and so its pools) for options that did not change.
type transportSet struct {
	prev     *upstream.Cluster
	stats    *upstream.Stats
	identity upstream.WorkloadIdentity
	used     []*upstream.Transport
}

// get returns the transport for opts: one already used by this cluster,
// the previous cluster's with equal options, or a new one.
func (s *transportSet) get(opts upstream.TransportOptions) *upstream.Transport {
	for _, t := range s.used {
		if t.Options == opts {
			return t
		}
	}
	var t *upstream.Transport
	if s.prev != nil {
		for _, pt := range s.prev.Transports {
			if pt.Options == opts {
				t = pt
				break
			}
		}
	}
	if t == nil {
		t = upstream.NewTransport(opts, s.stats)
	}
	s.used = append(s.used, t)
	return t
}

// compileMatches compiles transport_socket_matches; base are the
// cluster's transport options, whose TLS each entry replaces.
func (s *transportSet) compileMatches(ms []*cluster.Cluster_TransportSocketMatch, base upstream.TransportOptions) ([]socketMatch, error) {
	out := make([]socketMatch, 0, len(ms))
	for i, m := range ms {
		tlsOpts, err := upstreamTLS(m.TransportSocket)
		if err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%d] (%s): transport_socket: %w", i, m.Name, err)
		}
		opts := base
		opts.TLS, opts.Identity = tlsOpts, nil
		if tlsOpts.Workload || tlsOpts.MeshPeer {
			opts.Identity = s.identity
		}
		out = append(out, socketMatch{name: m.Name, match: m.GetMatch().GetFields(), transport: s.get(opts)})
	}
	return out, nil
}

// matchTransport is the transport the first matching entry chooses for an
// endpoint with metadata md, else (as Envoy) for its locality's metadata
// locality; nil when none matches (the cluster's own).
func matchTransport(ms []socketMatch, md, locality *core.Metadata) *upstream.Transport {
	if len(ms) == 0 {
		return nil
	}
	for _, src := range [2]*core.Metadata{md, locality} {
		labels := src.GetFilterMetadata()[transportSocketMatchKey].GetFields()
		for _, m := range ms {
			if metadataMatches(m.match, labels) {
				return m.transport
			}
		}
	}
	return nil
}

// metadataMatches is Envoy's Config::Metadata::metadataLabelMatch: every
// field of match is present in labels with an equal value.
func metadataMatches(match, labels map[string]*structpb.Value) bool {
	for k, v := range match {
		lv, ok := labels[k]
		if !ok || !proto.Equal(v, lv) {
			return false
		}
	}
	return true
}
