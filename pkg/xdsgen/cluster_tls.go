package xdsgen

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// SystemCABundle is the CA bundle used to verify upstream servers when a
// DestinationRule names none, as Istio falls back to the system roots.
const SystemCABundle = "/etc/ssl/certs/ca-certificates.crt"

// applyUpstreamTLS turns a DestinationRule's tls settings into the
// cluster's UpstreamTlsContext, as Istio's buildUpstreamClusterTLSContext:
// SIMPLE originates TLS verifying the server (the given CA, or the system
// roots), MUTUAL adds a client certificate; insecureSkipVerify drops the
// verification. A problem is reported and the cluster left plaintext.
// tlsTarget is the cluster a DestinationRule's tls applies to.
type tlsTarget struct {
	port         uint32
	subset, host string
	endpoints    []*registry.Endpoint
}

func (g *generation) applyUpstreamTLS(b *clusterBuild, t *networking.ClientTLSSettings, dr *model.DestinationRule, target tlsTarget) {
	if t == nil || t.Mode == networking.ClientTLSSettings_DISABLE {
		return
	}
	if t.Mode == networking.ClientTLSSettings_ISTIO_MUTUAL {
		ts, err := g.meshUpstreamTLS(target.port, target.subset, target.host, t.Sni, g.serviceIdentities(target.endpoints))
		if err == nil {
			b.c.TransportSocket = ts
		}
		return
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: t.Sni, CommonTlsContext: &tlsv3.CommonTlsContext{}}
	if b.isHTTP2() {
		ctx.CommonTlsContext.AlpnProtocols = []string{"h2"}
	}
	var cert, key, ca *core.DataSource
	if t.CredentialName != "" {
		sec := g.push.Secret(g.proxy.Namespace, t.CredentialName)
		if sec == nil && dr != nil {
			sec = g.push.Secret(dr.Namespace, t.CredentialName)
		}
		if sec == nil {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("cluster %s: tls credentialName %q: no such Secret; sent in plaintext", b.c.Name, t.CredentialName))
			return
		}
		if c, k := sec.Data["tls.crt"], sec.Data["tls.key"]; len(c) > 0 && len(k) > 0 {
			cert, key = inlineBytes(c), inlineBytes(k)
		}
		if c := sec.Data["ca.crt"]; len(c) > 0 {
			ca = inlineBytes(c)
		}
	} else {
		if t.ClientCertificate != "" {
			cert, key = fileSource(t.ClientCertificate), fileSource(t.PrivateKey)
		}
		if t.CaCertificates != "" {
			ca = fileSource(t.CaCertificates)
		}
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if cert == nil {
			g.out.Conflicts = append(g.out.Conflicts, fmt.Sprintf("cluster %s: tls mode MUTUAL needs a client certificate (credentialName or clientCertificate/privateKey); sent in plaintext", b.c.Name))
			return
		}
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: cert, PrivateKey: key}}
	}
	if !t.GetInsecureSkipVerify().GetValue() {
		if ca == nil {
			ca = fileSource(SystemCABundle)
		}
		vc := &tlsv3.CertificateValidationContext{TrustedCa: ca}
		for _, san := range t.SubjectAltNames {
			vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: san}},
			})
		}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	typed, err := anypb.New(ctx)
	if err != nil {
		return
	}
	b.c.TransportSocket = &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: typed}}
}
