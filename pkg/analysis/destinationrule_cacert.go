package analysis

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/destinationrule/ca-certificates.go.
func init() {
	register(&Analyzer{
		Name:        "destinationrule.CaCertificateAnalyzer",
		Description: "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL",
		Codes:       []string{"IST0128", "IST0129"},
		run: func(c *Context) {
			for _, o := range c.Objects(config.KindDestinationRule) {
				destinationRuleCaCerts(c, o)
			}
		},
	})
}

func destinationRuleCaCerts(c *Context, o *Object) {
	dr := o.Spec.(*networking.DestinationRule)
	unverified := func(tls *networking.ClientTLSSettings) bool {
		mode := tls.GetMode()
		return (mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL) &&
			tls.GetCaCertificates() == "" && !(tls.GetCredentialName() != "" && dr.WorkloadSelector != nil)
	}
	if tls := dr.GetTrafficPolicy().GetTls(); unverified(tls) {
		c.report(NoServerCertificateVerificationDestinationLevel, o, pathDRTLSCert,
			o.FullName(), o.Namespace, tls.GetMode().String(), dr.GetHost())
	}
	for i, p := range dr.GetTrafficPolicy().GetPortLevelSettings() {
		if tls := p.GetTls(); unverified(tls) {
			c.report(NoServerCertificateVerificationPortLevel, o, sprintf(pathDRTLSPortLevelCrt, i),
				o.FullName(), o.Namespace, tls.GetMode().String(), dr.GetHost(), p.GetPort().String())
		}
	}
}
