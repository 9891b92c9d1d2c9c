package xdsgen

import (
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// Transport protocols the tls_inspector listener filter detects, as
// Istio's xdsfilters.TLSTransportProtocol and RawBufferTransportProtocol.
const (
	TLSTransportProtocol       = "tls"
	RawBufferTransportProtocol = "raw_buffer"
)

// spiffeURIPrefix starts a SPIFFE ID (Istio's spiffe.URIPrefix).
const spiffeURIPrefix = "spiffe://"

// allIstioMtlsALPNs are the ALPNs a mesh client offers over mTLS, which the
// inbound mTLS chain of a PERMISSIVE port matches (Istio's
// allIstioMtlsALPNs, pilot/pkg/networking/core/listener.go).
var allIstioMtlsALPNs = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// inboundChainBuilder makes the filters of one inbound chain (an HTTP
// connection manager, or the TCP filters ending in tcp_proxy): a fresh
// chain on every call.
type inboundChainBuilder func() (*listener.FilterChain, error)

// inboundChainMatch is one of Istio's FilterChainMatchOptions
// (pilot/pkg/networking/core/filterchain_options.go).
type inboundChainMatch struct {
	alpn      []string
	transport string
	// tls says the chain terminates mesh mTLS.
	tls bool
	// http says the chain serves HTTP (a connection manager; its mTLS
	// context is Istio's mtls.HTTP), else TCP (mtls.TCP).
	http bool
}

// inboundChainMatches are Istio's getFilterChainMatchOptions for an HTTP or
// TCP port: STRICT terminates mTLS only (a plaintext connection matches no
// chain and is closed); PERMISSIVE has the mTLS chain (a mesh ALPN), for
// TCP a chain passing other TLS through to the app, and the plaintext
// chain; DISABLE has the plaintext chain only.
func inboundChainMatches(mode model.MTLSMode, http bool) []inboundChainMatch {
	switch {
	case mode == model.MTLSStrict:
		return []inboundChainMatch{{transport: TLSTransportProtocol, tls: true, http: http}}
	case mode == model.MTLSPermissive && http:
		return []inboundChainMatch{
			{alpn: allIstioMtlsALPNs, transport: TLSTransportProtocol, tls: true, http: true},
			{transport: RawBufferTransportProtocol, http: true},
		}
	case mode == model.MTLSPermissive:
		return []inboundChainMatch{
			{alpn: allIstioMtlsALPNs, transport: TLSTransportProtocol, tls: true},
			{transport: TLSTransportProtocol},
			{transport: RawBufferTransportProtocol},
		}
	}
	return []inboundChainMatch{{transport: RawBufferTransportProtocol, http: http}}
}

// inboundChains builds the filter chains of an inbound port in mode.
func (g *generation) inboundChains(mode model.MTLSMode, http bool, build inboundChainBuilder) ([]*listener.FilterChain, error) {
	var out []*listener.FilterChain
	for _, m := range inboundChainMatches(mode, http) {
		chain, err := g.inboundChain(m, build)
		if err != nil {
			return nil, err
		}
		out = append(out, chain)
	}
	return out, nil
}

// inboundChain builds one chain with its match and, for an mTLS match,
// the DownstreamTlsContext of its protocol (Istio's
// FilterChainMatchOptions.ToTransportSocket).
func (g *generation) inboundChain(m inboundChainMatch, build inboundChainBuilder) (*listener.FilterChain, error) {
	chain, err := build()
	if err != nil {
		return nil, err
	}
	chain.FilterChainMatch = &listener.FilterChainMatch{TransportProtocol: m.transport, ApplicationProtocols: m.alpn}
	if m.tls {
		ts, err := g.inboundTLS(m.http)
		if err != nil {
			return nil, err
		}
		chain.TransportSocket = ts
	}
	return chain, nil
}

// istioSupportedCiphers are Istio's SupportedCiphers for inbound mTLS
// (pilot/pkg/security/authn/utils/utils.go) that Go's TLS offers as
// secure: Istio's list also holds AES256-GCM-SHA384 and AES128-GCM-SHA256
// (RSA key exchange), which Go classes insecure and sluice's proxy does
// not serve, so they are left out.
var istioSupportedCiphers = []string{
	"ECDHE-ECDSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384",
	"ECDHE-ECDSA-AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256",
}

// inboundTLS is the DownstreamTlsContext of a sidecar's inbound mTLS chain,
// as Istio's authn_utils.BuildInboundTLS: the workload certificate (SDS
// "default"), a client certificate required and verified against the mesh
// roots (SDS "ROOTCA") with a SPIFFE ID in the trust domain or one of its
// aliases; ALPN h2, http/1.1 (TCP ports also istio-peer-exchange); TLS 1.2
// to 1.3 with Istio's ciphers or meshMTLS's.
func (g *generation) inboundTLS(http bool) (*core.TransportSocket, error) {
	alpn := []string{"h2", "http/1.1"}
	if !http {
		alpn = []string{"istio-peer-exchange", "h2", "http/1.1"}
	}
	common := meshCommonTLS(nil, alpn)
	vc := common.GetCombinedValidationContext().DefaultValidationContext
	for _, td := range trustDomainsForValidation(g.push.Mesh) {
		vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: spiffeURIPrefix + td + "/"}},
		})
	}
	ciphers := istioSupportedCiphers
	if mc := g.push.Mesh.GetMeshMTLS(); mc != nil && mc.CipherSuites != nil {
		ciphers = mc.CipherSuites
	}
	minVersion := tlsv3.TlsParameters_TLSv1_2
	if g.push.Mesh.GetMeshMTLS().GetMinProtocolVersion() == meshv1alpha1.MeshConfig_TLSConfig_TLSV1_3 {
		minVersion = tlsv3.TlsParameters_TLSv1_3
	}
	common.TlsParams = &tlsv3.TlsParameters{
		CipherSuites:              ciphers,
		TlsMinimumProtocolVersion: minVersion,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}
	typed, err := anypb.New(&tlsv3.DownstreamTlsContext{CommonTlsContext: common, RequireClientCertificate: wrapperspb.Bool(true)})
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
}

// trustDomainsForValidation is Istio's TrustDomainsForValidation
// (pilot/pkg/networking/plugin/authn/util.go): the trust domain, then its
// aliases and the trust domains of meshConfig caCertificates, without
// duplicates or empty names.
func trustDomainsForValidation(mc *meshv1alpha1.MeshConfig) []string {
	td := mc.GetTrustDomain()
	if td == "" {
		td = meshconfig.DefaultTrustDomain
	}
	all := append([]string{td}, mc.GetTrustDomainAliases()...)
	for _, c := range mc.GetCaCertificates() {
		all = append(all, c.GetTrustDomains()...)
	}
	var out []string
	for _, d := range all {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
