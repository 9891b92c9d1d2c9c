package dataplane

import (
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// meshTLS is what a TLS context asks of the mesh identity.
type meshTLS struct {
	// cert: present the workload certificate; roots: verify the peer
	// against the mesh roots, and its SPIFFE ID against ids when set.
	cert, roots bool
	ids         []string
}

// sdsRefs reads the SDS references of a TLS context. Only the names the
// proxy's own identity answers are accepted; anything else is an error, so
// config asking for secrets sluice cannot fetch is rejected, not ignored.
func sdsRefs(common *tlsv3.CommonTlsContext) (meshTLS, error) {
	var m meshTLS
	for _, s := range common.GetTlsCertificateSdsSecretConfigs() {
		if s.GetName() != ca.SDSWorkloadCert {
			return m, fmt.Errorf("SDS certificate %q: only %q, the workload certificate, is served", s.GetName(), ca.SDSWorkloadCert)
		}
		m.cert = true
	}
	if s := common.GetValidationContextSdsSecretConfig(); s != nil {
		if s.GetName() != ca.SDSRootCA {
			return m, fmt.Errorf("SDS validation context %q: only %q, the mesh roots, is served", s.GetName(), ca.SDSRootCA)
		}
		m.roots = true
	}
	if cv := common.GetCombinedValidationContext(); cv != nil {
		if n := cv.GetValidationContextSdsSecretConfig().GetName(); n != ca.SDSRootCA {
			return m, fmt.Errorf("SDS validation context %q: only %q, the mesh roots, is served", n, ca.SDSRootCA)
		}
		m.roots = true
		// Exact URI matchers are the SPIFFE IDs the identity checks; the
		// rest of the default context is compiled by compileValidation
		// (downstream) or refused by upstreamTLS.
		for _, san := range cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			if v := san.GetMatcher().GetExact(); san.GetSanType() == tlsv3.SubjectAltNameMatcher_URI && v != "" && !san.GetMatcher().GetIgnoreCase() {
				m.ids = append(m.ids, v)
			}
		}
	}
	return m, nil
}
