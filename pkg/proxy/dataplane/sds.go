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
		for _, san := range cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			v := san.GetMatcher().GetExact()
			if san.GetSanType() != tlsv3.SubjectAltNameMatcher_URI || v == "" {
				return m, fmt.Errorf("combined validation context: only exact URI (SPIFFE) subject alt names are supported")
			}
			m.ids = append(m.ids, v)
		}
	}
	return m, nil
}
