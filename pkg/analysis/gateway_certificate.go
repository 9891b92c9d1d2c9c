package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/gateway/certificate.go
// (with PILOT_SCOPE_GATEWAY_TO_NAMESPACE at its default, false).
func init() {
	register(&Analyzer{
		Name:        "gateway.CertificateAnalyzer",
		Description: "Checks a gateway certificate",
		Codes:       []string{"IST0138"},
		run: func(c *Context) {
			for _, o := range c.Objects(config.KindGateway) {
				duplicateCertificates(c, o)
			}
		},
	})
}

// duplicateCertificates reports each pair of TLS servers that o and a
// gateway whose selector o's selector is a subset of share a certificate.
func duplicateCertificates(c *Context, o *Object) {
	gw := o.Spec.(*networking.Gateway)
	for _, other := range c.Objects(config.KindGateway) {
		og := other.Spec.(*networking.Gateway)
		if other == o || len(gw.Selector) > 0 && !selectorSubset(gw.Selector, og.Selector) {
			continue
		}
		for _, cur := range gw.Servers {
			for _, srv := range og.Servers {
				if cur.Tls == nil || srv.Tls == nil || !sameCertificate(cur.Tls, srv.Tls) {
					continue
				}
				c.report(GatewayDuplicateCertificate, o, pathMetadataName, []string{o.FullName(), other.FullName()})
			}
		}
	}
}

func sameCertificate(a, b *networking.ServerTLSSettings) bool {
	if a.CredentialName != "" && b.CredentialName != "" {
		return a.CredentialName == b.CredentialName
	}
	if a.CredentialName == "" && b.CredentialName == "" &&
		a.ServerCertificate != "" && a.ServerCertificate == b.ServerCertificate &&
		a.PrivateKey != "" && b.PrivateKey != "" {
		return a.PrivateKey == b.PrivateKey
	}
	return false
}

// selectorSubset reports whether every label of x is in y with the same
// value.
func selectorSubset(x, y map[string]string) bool {
	for k, v := range x {
		if yv, ok := y[k]; !ok || yv != v {
			return false
		}
	}
	return true
}
