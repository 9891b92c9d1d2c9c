package xdsgen

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// SDSCluster is the cluster of the local agent's SDS in Istio's bootstrap
// (sluice's proxy is its own agent and answers ca.SDSWorkloadCert and
// ca.SDSRootCA itself).
const SDSCluster = "sds-grpc"

// sdsSecret refers to a secret of the local agent's SDS, as Istio does.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &core.ConfigSource{
		ResourceApiVersion: core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_ApiConfigSource{ApiConfigSource: &core.ApiConfigSource{
			ApiType: core.ApiConfigSource_GRPC, TransportApiVersion: core.ApiVersion_V3, SetNodeOnFirstMessageOnly: true,
			GrpcServices: []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: SDSCluster}}}},
		}},
	}}
}

// meshCommonTLS presents the workload certificate and verifies peers
// against the mesh roots and, when given, their SPIFFE IDs.
func meshCommonTLS(peerIDs []string, alpn []string) *tlsv3.CommonTlsContext {
	vc := &tlsv3.CertificateValidationContext{}
	for _, id := range peerIDs {
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: id}},
		})
	}
	return &tlsv3.CommonTlsContext{
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(ca.SDSWorkloadCert)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         vc,
				ValidationContextSdsSecretConfig: sdsSecret(ca.SDSRootCA),
			},
		},
	}
}

// meshDownstreamContext terminates mesh mTLS (a Gateway's ISTIO_MUTUAL
// server): clients must present a certificate from the mesh CA, carrying
// one of sans when given (Istio's exact match_subject_alt_names).
func meshDownstreamContext(sans []string) *tlsv3.DownstreamTlsContext {
	ctx := &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         meshCommonTLS(nil, []string{"h2", "http/1.1"}),
		RequireClientCertificate: wrapperspb.Bool(true),
	}
	if len(sans) > 0 {
		dvc := ctx.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext
		dvc.MatchSubjectAltNames = exactMatchers(sans) //nolint:staticcheck // what Istio sends
	}
	return ctx
}

// Mesh mTLS ALPNs a client sidecar offers: Istio's util.ALPNInMeshWithMxc
// (TCP), and what its istio.alpn filter puts on the wire for an HTTP/1.1
// or HTTP/2 upstream (pilot/pkg/xds/filters/filters.go mtlsHTTP11ALPN,
// mtlsHTTP2ALPN), so a server sidecar sniffing the port finds its HTTP
// chain and the TLS handshake still negotiates http/1.1 or h2.
var (
	alpnMeshTCP   = []string{"istio-peer-exchange", "istio"}
	alpnMeshHTTP1 = []string{"istio-http/1.1", "istio", "http/1.1"}
	alpnMeshHTTP2 = []string{"istio-h2", "istio", "h2"}
)

// meshALPN is the ALPN of a cluster's mesh mTLS: by its upstream protocol
// for an HTTP service port, as Istio's per-request istio.alpn override
// makes it; ALPNInMeshWithMxc for TCP and for a cluster speaking each
// request's downstream protocol (useClientProtocol), which one list
// cannot say (Istio overrides it per request; sluice offers the TCP
// list, so a server sniffing the port takes such connections as TCP).
func meshALPN(b *clusterBuild, proto registry.Protocol) []string {
	switch {
	case !proto.IsHTTP(), b.http.GetUseDownstreamProtocolConfig() != nil:
		return alpnMeshTCP
	case b.isHTTP2():
		return alpnMeshHTTP2
	}
	return alpnMeshHTTP1
}

// meshUpstreamTLS originates mesh mTLS to a cluster (DestinationRule
// ISTIO_MUTUAL, or auto mTLS), with Istio's SNI
// outbound_.<port>_.<subset>_.<host> (unless sni is given) and alpn,
// verifying the servers' SPIFFE IDs when their service accounts are known.
func (g *generation) meshUpstreamTLS(t tlsTarget, sni string, peerIDs []string, alpn []string) (*core.TransportSocket, error) {
	if sni == "" {
		sni = fmt.Sprintf("outbound_.%d_.%s_.%s", t.port, t.subset, t.host)
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: meshCommonTLS(peerIDs, alpn)}
	typed, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
}

// serviceIdentities are the SPIFFE IDs of the endpoints' service accounts.
func (g *generation) serviceIdentities(eps []*registry.Endpoint) []string {
	td := g.push.Mesh.GetTrustDomain()
	if td == "" {
		td = meshconfig.DefaultTrustDomain
	}
	seen := map[string]bool{}
	var out []string
	for _, ep := range eps {
		if ep.ServiceAccount == "" {
			continue
		}
		ns, _, _ := strings.Cut(ep.Workload, "/")
		id := ca.Identity(td, ns, ep.ServiceAccount)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
