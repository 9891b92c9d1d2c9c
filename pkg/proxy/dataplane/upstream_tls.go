package dataplane

import (
	"crypto/tls"
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/tlsverify"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// upstreamTLS reads a cluster's UpstreamTlsContext: the TLS the proxy
// originates to the cluster's hosts (Istio's DestinationRule tls).
func upstreamTLS(ts *core.TransportSocket) (upstream.TLSOptions, error) {
	var o upstream.TLSOptions
	if ts == nil || ts.Name == "envoy.transport_sockets.raw_buffer" {
		return o, nil // plaintext
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
	if err := onlyFields(&ctx, "tls: upstream tls context", upstreamFields...); err != nil {
		return o, err
	}
	common := ctx.GetCommonTlsContext()
	if err := checkCommon(common); err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	mesh, err := sdsRefs(common)
	if err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	if err := meshUpstreamValidation(common); err != nil {
		return o, fmt.Errorf("tls: %w", err)
	}
	if p := common.GetTlsParams(); len(p.GetCipherSuites())+len(p.GetEcdhCurves()) > 0 {
		return o, fmt.Errorf("tls: tls_params cipher_suites and ecdh_curves are not supported upstream")
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
		if len(vc.GetVerifyCertificateSpki())+len(vc.GetVerifyCertificateHash()) > 0 || len(vc.GetMatchSubjectAltNames()) > 0 { //nolint:staticcheck
			return o, fmt.Errorf("tls: verify_certificate_spki, verify_certificate_hash and match_subject_alt_names are not supported upstream")
		}
		if vc.GetCrl() != nil {
			if vc.GetTrustedCa() == nil || vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED {
				return o, fmt.Errorf("tls: crl needs a trusted_ca to verify chains with")
			}
			crl, err := readDataSource(vc.GetCrl())
			if err != nil {
				return o, fmt.Errorf("tls: crl: %w", err)
			}
			if _, err := tlsverify.ParseCRLs(crl); err != nil {
				return o, fmt.Errorf("tls: %w", err)
			}
			o.CRLPEM = string(crl)
		}
		if vc.GetTrustedCa() != nil {
			ca, err := readDataSource(vc.GetTrustedCa())
			if err != nil {
				return o, fmt.Errorf("tls: trusted_ca: %w", err)
			}
			o.CAPEM = string(ca)
		}
		var sans []string
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			if v := m.GetMatcher().GetExact(); v != "" && m.GetSanType() == tlsv3.SubjectAltNameMatcher_DNS && !m.GetMatcher().GetIgnoreCase() {
				sans = append(sans, v)
			} else {
				return o, fmt.Errorf("tls: only exact DNS subject alt name matchers are supported upstream")
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

// meshUpstreamValidation: to mesh peers (SDS mesh roots) the proxy checks
// the chain and the SPIFFE IDs (exact URI matchers) only; anything else in
// the default validation context is refused, not dropped.
func meshUpstreamValidation(common *tlsv3.CommonTlsContext) error {
	dvc := common.GetCombinedValidationContext().GetDefaultValidationContext()
	if dvc == nil {
		return nil
	}
	if err := onlyFields(dvc, "combined validation context upstream", "match_typed_subject_alt_names"); err != nil {
		return err
	}
	for _, san := range dvc.GetMatchTypedSubjectAltNames() {
		if san.GetSanType() != tlsv3.SubjectAltNameMatcher_URI || san.GetMatcher().GetExact() == "" || san.GetMatcher().GetIgnoreCase() {
			return fmt.Errorf("combined validation context: only exact URI (SPIFFE) subject alt names are supported upstream")
		}
	}
	return nil
}
