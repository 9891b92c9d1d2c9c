package xdsgen

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// Names Envoy registers.
const (
	TLSInspectorFilter = "envoy.filters.listener.tls_inspector"
	TLSTransportSocket = "envoy.transport_sockets.tls"
)

func tlsInspector() *listener.ListenerFilter {
	cfg, _ := anypb.New(&tlsinspector.TlsInspector{})
	return &listener.ListenerFilter{Name: TLSInspectorFilter, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: cfg}}
}

// downstreamTLS is the TLS a Gateway server terminates, as Istio's
// buildGatewayListenerTLSContext (pilot/pkg/networking/core/listener.go)
// and ApplyCredentialSDSToServerCommonTLSContext / ApplyToCommonTLSContext
// (pilot/pkg/security/model/authentication.go) build it: the server
// certificates (credentialName(s) Secrets or files), and for MUTUAL and
// OPTIONAL_MUTUAL a validation context of the client CA, the CRL, the
// subject alt names and the SPKI/hash pins, the client certificate
// required for MUTUAL only (OPTIONAL_MUTUAL verifies one when presented).
func (g *generation) downstreamTLS(s *model.GatewayServer) (*core.TransportSocket, error) {
	t := s.Spec.GetTls()
	if t == nil {
		return nil, fmt.Errorf("HTTPS server without tls settings")
	}
	var ctx *tlsv3.DownstreamTlsContext
	if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		ctx = meshDownstreamContext(t.SubjectAltNames)
	} else {
		creds, err := g.serverCredentials(s, t)
		if err != nil {
			return nil, err
		}
		ctx = &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:   []string{"h2", "http/1.1"},
			TlsParams:       tlsParams(t),
			TlsCertificates: creds.certs,
		}}
		if t.Mode == networking.ServerTLSSettings_MUTUAL || t.Mode == networking.ServerTLSSettings_OPTIONAL_MUTUAL {
			vc, err := clientValidation(t, creds)
			if err != nil {
				return nil, err
			}
			ctx.RequireClientCertificate = wrapperspb.Bool(t.Mode == networking.ServerTLSSettings_MUTUAL)
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	typed, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
}

// clientValidation checks client certificates against the CA, the CRL,
// the subject alt names (Istio's exact match_subject_alt_names, on any
// SAN type) and the SPKI and certificate hash pins; insecureSkipVerify
// leaves the chain untrusted but keeps the other checks (Envoy's
// ACCEPT_UNTRUSTED).
func clientValidation(t *networking.ServerTLSSettings, creds serverCreds) (*tlsv3.CertificateValidationContext, error) {
	if creds.ca == nil {
		return nil, fmt.Errorf("tls mode %s needs a client CA (ca.crt in the Secret, a <name>-cacert Secret, caCertCredentialName or caCertificates)", t.Mode)
	}
	vc := &tlsv3.CertificateValidationContext{
		TrustedCa:             creds.ca,
		Crl:                   creds.crl,
		MatchSubjectAltNames:  exactMatchers(t.SubjectAltNames), //nolint:staticcheck // what Istio sends
		VerifyCertificateSpki: t.VerifyCertificateSpki,
		VerifyCertificateHash: t.VerifyCertificateHash,
	}
	if t.GetInsecureSkipVerify().GetValue() {
		// Envoy ignores every chain error then, a revocation included:
		// a Secret's ca.crl has no effect (caCrl with insecureSkipVerify
		// is rejected by config.Unsupported).
		vc.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
		vc.Crl = nil
	}
	return vc, nil
}

func exactMatchers(names []string) []*matcher.StringMatcher {
	var out []*matcher.StringMatcher
	for _, n := range names {
		out = append(out, &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: n}})
	}
	return out
}

// serverCreds are a server's certificates and its client CA and CRL.
type serverCreds struct {
	certs   []*tlsv3.TlsCertificate
	ca, crl *core.DataSource
}

// serverCredentials reads the certificates from credentialName(s) Secrets
// (kubernetes.io/tls: tls.crt, tls.key; the client CA from ca.crt, a
// <name>-cacert Secret or caCertCredentialName, with its ca.crl as the
// CRL, as Istio's ExtractRoot), or from files (serverCertificate/
// privateKey or tlsCertificates, caCertificates, caCrl).
func (g *generation) serverCredentials(s *model.GatewayServer, t *networking.ServerTLSSettings) (serverCreds, error) {
	var c serverCreds
	names := t.CredentialNames
	if t.CredentialName != "" {
		names = []string{t.CredentialName}
	}
	switch {
	case len(names) > 0:
		for _, name := range names {
			sec, err := g.serverSecret(s, name)
			if err != nil {
				return c, err
			}
			if len(sec.Data["tls.crt"]) == 0 || len(sec.Data["tls.key"]) == 0 {
				return c, fmt.Errorf("credentialName %q: the Secret has no tls.crt and tls.key", name)
			}
			c.certs = append(c.certs, &tlsv3.TlsCertificate{CertificateChain: inlineBytes(sec.Data["tls.crt"]), PrivateKey: inlineBytes(sec.Data["tls.key"])})
		}
		var caSec *config.Secret
		if t.CaCertCredentialName != "" {
			sec, err := g.serverSecret(s, t.CaCertCredentialName)
			if err != nil {
				return c, fmt.Errorf("caCertCredentialName: %w", err)
			}
			caSec = sec
		} else if sec, err := g.serverSecret(s, names[0]); err == nil && len(sec.Data["ca.crt"]) > 0 {
			caSec = sec
		} else if cs, err := g.serverSecret(s, names[0]+"-cacert"); err == nil {
			caSec = cs
		}
		if caSec != nil && len(caSec.Data["ca.crt"]) > 0 {
			c.ca = inlineBytes(caSec.Data["ca.crt"])
			if b := caSec.Data["ca.crl"]; len(b) > 0 {
				c.crl = inlineBytes(b)
			}
		}
		return c, nil
	case t.ServerCertificate != "":
		c.certs = []*tlsv3.TlsCertificate{{CertificateChain: fileSource(t.ServerCertificate), PrivateKey: fileSource(t.PrivateKey)}}
	case len(t.TlsCertificates) > 0:
		for _, tc := range t.TlsCertificates {
			c.certs = append(c.certs, &tlsv3.TlsCertificate{CertificateChain: fileSource(tc.ServerCertificate), PrivateKey: fileSource(tc.PrivateKey)})
		}
	default:
		return c, fmt.Errorf("tls mode %s needs credentialName, credentialNames, serverCertificate and privateKey, or tlsCertificates", t.Mode)
	}
	if t.CaCertificates != "" {
		c.ca = fileSource(t.CaCertificates)
	}
	if t.CaCrl != "" {
		c.crl = fileSource(t.CaCrl)
	}
	return c, nil
}

// serverSecret finds a credential Secret: in the router's namespace, then
// the Gateway's; "ns/name" names one in another namespace, as Gateway API
// listeners may (with a ReferenceGrant) once converted.
func (g *generation) serverSecret(s *model.GatewayServer, name string) (*config.Secret, error) {
	sec := g.push.Secret(g.proxy.Namespace, name)
	if sec == nil {
		sec = g.push.Secret(s.Gateway.Namespace, name)
	}
	if ns, n, ok := strings.Cut(name, "/"); ok && sec == nil {
		sec = g.push.Secret(ns, n)
	}
	if sec == nil {
		return nil, fmt.Errorf("credentialName %q: no Secret of that name in namespace %s or %s", name, g.proxy.Namespace, s.Gateway.Namespace)
	}
	return sec, nil
}

var tlsVersions = map[networking.ServerTLSSettings_TLSProtocol]tlsv3.TlsParameters_TlsProtocol{
	networking.ServerTLSSettings_TLS_AUTO: tlsv3.TlsParameters_TLS_AUTO,
	networking.ServerTLSSettings_TLSV1_0:  tlsv3.TlsParameters_TLSv1_0,
	networking.ServerTLSSettings_TLSV1_1:  tlsv3.TlsParameters_TLSv1_1,
	networking.ServerTLSSettings_TLSV1_2:  tlsv3.TlsParameters_TLSv1_2,
	networking.ServerTLSSettings_TLSV1_3:  tlsv3.TlsParameters_TLSv1_3,
}

// tlsParams: Istio's gateways default to TLS 1.2 as the minimum.
func tlsParams(t *networking.ServerTLSSettings) *tlsv3.TlsParameters {
	p := &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLS_AUTO}
	if v := t.MinProtocolVersion; v != networking.ServerTLSSettings_TLS_AUTO {
		p.TlsMinimumProtocolVersion = tlsVersions[v]
	}
	if v := t.MaxProtocolVersion; v != networking.ServerTLSSettings_TLS_AUTO {
		p.TlsMaximumProtocolVersion = tlsVersions[v]
	}
	p.CipherSuites = t.CipherSuites
	return p
}

func inlineBytes(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

func fileSource(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}
