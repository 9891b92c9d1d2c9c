package xdsgen

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

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

// downstreamTLS is the TLS a Gateway server terminates: its certificate
// from credentialName (a kubernetes.io/tls Secret, looked up in the router's
// namespace, then the Gateway's) or from file paths, the client CA for
// MUTUAL, and the protocol version bounds.
func (g *generation) downstreamTLS(s *model.GatewayServer) (*core.TransportSocket, error) {
	t := s.Spec.GetTls()
	if t == nil {
		return nil, fmt.Errorf("HTTPS server without tls settings")
	}
	if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL {
		return meshDownstreamTLS()
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"},
		TlsParams:     tlsParams(t),
	}}
	var cert, key, ca *core.DataSource
	switch {
	case t.CredentialName != "":
		sec := g.push.Secret(g.proxy.Namespace, t.CredentialName)
		if sec == nil {
			sec = g.push.Secret(s.Gateway.Namespace, t.CredentialName)
		}
		if ns, name, ok := strings.Cut(t.CredentialName, "/"); ok && sec == nil {
			// "ns/name": a Secret in another namespace, as Gateway API
			// listeners may name (with a ReferenceGrant) once converted.
			sec = g.push.Secret(ns, name)
		}
		if sec == nil {
			return nil, fmt.Errorf("credentialName %q: no Secret of that name in namespace %s or %s", t.CredentialName, g.proxy.Namespace, s.Gateway.Namespace)
		}
		if len(sec.Data["tls.crt"]) == 0 || len(sec.Data["tls.key"]) == 0 {
			return nil, fmt.Errorf("credentialName %q: the Secret has no tls.crt and tls.key", t.CredentialName)
		}
		cert, key = inlineBytes(sec.Data["tls.crt"]), inlineBytes(sec.Data["tls.key"])
		if b := sec.Data["ca.crt"]; len(b) > 0 {
			ca = inlineBytes(b)
		} else if cs := g.push.Secret(s.Gateway.Namespace, t.CredentialName+"-cacert"); cs != nil && len(cs.Data["ca.crt"]) > 0 {
			ca = inlineBytes(cs.Data["ca.crt"])
		}
	case t.ServerCertificate != "":
		cert, key = fileSource(t.ServerCertificate), fileSource(t.PrivateKey)
		if t.CaCertificates != "" {
			ca = fileSource(t.CaCertificates)
		}
	default:
		return nil, fmt.Errorf("tls mode %s needs credentialName or serverCertificate and privateKey", t.Mode)
	}
	ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: cert, PrivateKey: key}}
	if t.Mode == networking.ServerTLSSettings_MUTUAL {
		if ca == nil {
			return nil, fmt.Errorf("tls mode MUTUAL needs a client CA (ca.crt in the Secret, a <name>-cacert Secret, or caCertificates)")
		}
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: ca},
		}
	}
	typed, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}, nil
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
