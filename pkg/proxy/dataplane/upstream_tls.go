package dataplane

import (
	"crypto/tls"
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// upstreamTLS reads a cluster's UpstreamTlsContext: the TLS the proxy
// originates to the cluster's hosts (Istio's DestinationRule tls).
func upstreamTLS(ts *core.TransportSocket) (upstream.TLSOptions, error) {
	var o upstream.TLSOptions
	if ts == nil {
		return o, nil
	}
	if ts.Name != "envoy.transport_sockets.tls" {
		return o, fmt.Errorf("%q is not supported", ts.Name)
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	if err := ctx.ValidateAll(); err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	common := ctx.GetCommonTlsContext()
	mesh, err := sdsRefs(common)
	if err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	o.Workload, o.MeshPeer, o.PeerIDs = mesh.cert, mesh.roots, strings.Join(mesh.ids, ",")
	o.Enabled = true
	o.SNI = ctx.Sni
	o.ALPN = strings.Join(common.GetAlpnProtocols(), ",")
	if p := common.GetTlsParams(); p != nil {
		o.MinVersion = tlsVersion[p.TlsMinimumProtocolVersion]
		o.MaxVersion = tlsVersion[p.TlsMaximumProtocolVersion]
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	for i, c := range common.GetTlsCertificates() {
		if i > 0 {
			return o, fmt.Errorf("tls: only one client certificate is supported")
		}
		cert, err := readDataSource(c.GetCertificateChain())
		if err != nil {
			return o, fmt.Errorf("tls: client certificate: %w", err)
		}
		key, err := readDataSource(c.GetPrivateKey())
		if err != nil {
			return o, fmt.Errorf("tls: client key: %w", err)
		}
		o.CertPEM, o.KeyPEM = string(cert), string(key)
	}
	if vc := common.GetValidationContext(); vc != nil {
		if vc.GetTrustedCa() != nil {
			ca, err := readDataSource(vc.GetTrustedCa())
			if err != nil {
				return o, fmt.Errorf("tls: trusted_ca: %w", err)
			}
			o.CAPEM = string(ca)
		}
		var sans []string
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			if v := m.GetMatcher().GetExact(); v != "" {
				sans = append(sans, v)
			} else {
				return o, fmt.Errorf("tls: only exact subject alt name matchers are supported")
			}
		}
		o.SANs = strings.Join(sans, ",")
	}
	// As in Envoy, a server certificate is verified only against a
	// trusted_ca; without one (Istio's insecureSkipVerify) it is not.
	// Istio's auto_sni takes the SNI from the request; sluice takes it
	// from the host's name, which for DNS clusters is the same.
	o.InsecureSkipVerify = !o.MeshPeer && common.GetValidationContext().GetTrustedCa() == nil ||
		common.GetValidationContext().GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	return o, nil
}
