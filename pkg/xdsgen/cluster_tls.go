package xdsgen

import (
	"fmt"
	"slices"
	"sort"
	"strings"

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
	protocol     registry.Protocol
	subset, host string
	endpoints    []*registry.Endpoint
	// external: the service comes from a ServiceEntry, whose
	// subjectAltNames are sans.
	external bool
	sans     []string
}

// serviceAccounts are Istio's push.ServiceAccounts for the target: the
// ServiceEntry's subjectAltNames and the SPIFFE IDs of the endpoints'
// service accounts, each SPIFFE ID also in every MeshConfig
// trustDomainAliases (spiffe.ExpandWithTrustDomains).
func (g *generation) serviceAccounts(target tlsTarget) []string {
	out := append([]string(nil), target.sans...)
	for _, id := range g.serviceIdentities(target.endpoints) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, id := range slices.Clone(out) {
		rest, ok := strings.CutPrefix(id, spiffeURIPrefix)
		if !ok {
			continue
		}
		_, path, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		for _, td := range g.push.Mesh.GetTrustDomainAliases() {
			if alias := spiffeURIPrefix + td + "/" + path; !slices.Contains(out, alias) {
				out = append(out, alias)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (g *generation) applyUpstreamTLS(b *clusterBuild, t *networking.ClientTLSSettings, dr *model.DestinationRule, target tlsTarget) {
	if t == nil || t.Mode == networking.ClientTLSSettings_DISABLE {
		return
	}
	if t.Mode == networking.ClientTLSSettings_ISTIO_MUTUAL {
		// The rule's subjectAltNames, else the service accounts
		// (ClusterBuilder.buildUpstreamTLSSettings in istio/istio
		// pilot/pkg/networking/core/cluster_tls.go).
		sans := t.SubjectAltNames
		if len(sans) == 0 {
			sans = g.serviceAccounts(target)
		}
		ts, err := g.meshUpstreamTLS(target, t.Sni, sans, meshALPN(b, target.protocol))
		if err == nil {
			b.c.TransportSocket = ts
		}
		return
	}
	sans := t.SubjectAltNames
	if target.external && len(sans) == 0 {
		// constructUpstreamTLS: a ServiceEntry's subjectAltNames when the
		// rule names none.
		sans = g.serviceAccounts(target)
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: t.Sni, CommonTlsContext: &tlsv3.CommonTlsContext{}}
	if b.isHTTP2() {
		ctx.CommonTlsContext.AlpnProtocols = []string{"h2"}
	}
	var cert, key, ca, crl *core.DataSource
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
			if l := sec.Data["ca.crl"]; len(l) > 0 {
				crl = inlineBytes(l) // Istio's ExtractRoot: the CA's CRL
			}
		}
	} else {
		if t.ClientCertificate != "" {
			cert, key = fileSource(t.ClientCertificate), fileSource(t.PrivateKey)
		}
		if t.CaCertificates != "" {
			ca = fileSource(t.CaCertificates)
		}
		if t.CaCrl != "" {
			crl = fileSource(t.CaCrl)
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
		vc := &tlsv3.CertificateValidationContext{TrustedCa: ca, Crl: crl}
		for _, san := range sans {
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
