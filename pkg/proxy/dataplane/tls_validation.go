package dataplane

import (
	"crypto/x509"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/tlsverify"
)

// onlyFields is the proxy's allow-list: every field set in m must be one
// the proxy honours, or the config is NACKed naming the field (nothing
// received is silently dropped).
func onlyFields(m proto.Message, what string, allowed ...string) error {
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		for _, a := range allowed {
			if string(fd.Name()) == a {
				return true
			}
		}
		bad = string(fd.Name())
		return false
	})
	if bad != "" {
		return fmt.Errorf("%s: field %s is not supported", what, bad)
	}
	return nil
}

// The fields of the TLS messages the proxy honours.
var (
	downstreamFields = []string{"common_tls_context", "require_client_certificate"}
	upstreamFields   = []string{"common_tls_context", "sni"}
	commonFields     = []string{"tls_params", "tls_certificates", "tls_certificate_sds_secret_configs",
		"validation_context", "validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols"}
	paramsFields     = []string{"tls_minimum_protocol_version", "tls_maximum_protocol_version", "cipher_suites", "ecdh_curves"}
	certFields       = []string{"certificate_chain", "private_key"}
	validationFields = []string{"trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names",
		"verify_certificate_spki", "verify_certificate_hash", "crl", "trust_chain_verification"}
	sdsFields      = []string{"name", "sds_config"}
	combinedFields = []string{"default_validation_context", "validation_context_sds_secret_config"}
)

// checkCommon applies the allow-list to a CommonTlsContext and what it
// holds.
func checkCommon(c *tlsv3.CommonTlsContext) error {
	if c == nil {
		return nil
	}
	if err := onlyFields(c, "common_tls_context", commonFields...); err != nil {
		return err
	}
	if p := c.GetTlsParams(); p != nil {
		if err := onlyFields(p, "tls_params", paramsFields...); err != nil {
			return err
		}
	}
	for _, tc := range c.GetTlsCertificates() {
		if err := onlyFields(tc, "tls_certificates", certFields...); err != nil {
			return err
		}
	}
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		if err := onlyFields(s, "tls_certificate_sds_secret_configs", sdsFields...); err != nil {
			return err
		}
	}
	if s := c.GetValidationContextSdsSecretConfig(); s != nil {
		if err := onlyFields(s, "validation_context_sds_secret_config", sdsFields...); err != nil {
			return err
		}
	}
	if vc := c.GetValidationContext(); vc != nil {
		if err := onlyFields(vc, "validation_context", validationFields...); err != nil {
			return err
		}
	}
	if cv := c.GetCombinedValidationContext(); cv != nil {
		if err := onlyFields(cv, "combined_validation_context", combinedFields...); err != nil {
			return err
		}
		if err := onlyFields(cv.GetDefaultValidationContext(), "combined_validation_context.default_validation_context", validationFields...); err != nil {
			return err
		}
		if err := onlyFields(cv.GetValidationContextSdsSecretConfig(), "combined_validation_context.validation_context_sds_secret_config", sdsFields...); err != nil {
			return err
		}
	}
	return nil
}

// validationContext is the validation context of common: the static one
// or the default one of a combined context (whose SDS part names the mesh
// roots, see sdsRefs).
func validationContext(common *tlsv3.CommonTlsContext) *tlsv3.CertificateValidationContext {
	if vc := common.GetValidationContext(); vc != nil {
		return vc
	}
	return common.GetCombinedValidationContext().GetDefaultValidationContext()
}

// compileValidation turns a CertificateValidationContext into the checks
// a peer certificate must pass. meshRoots: the chain is verified against
// the mesh roots by the workload identity, not here.
func compileValidation(vc *tlsv3.CertificateValidationContext, meshRoots bool) (*tlsverify.Policy, error) {
	p := &tlsverify.Policy{}
	if vc == nil {
		return p, nil
	}
	if err := onlyFields(vc, "validation context", validationFields...); err != nil {
		return nil, err
	}
	untrusted := vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
	if vc.GetTrustedCa() != nil {
		if meshRoots {
			return nil, fmt.Errorf("trusted_ca together with the SDS mesh roots is not supported")
		}
		pem, err := readDataSource(vc.GetTrustedCa())
		if err != nil {
			return nil, fmt.Errorf("trusted_ca: %w", err)
		}
		pool, err := certPool(pem)
		if err != nil {
			return nil, fmt.Errorf("trusted_ca: %w", err)
		}
		if !untrusted {
			p.Roots = pool
		}
	}
	if vc.GetCrl() != nil {
		// Envoy refuses a CRL without a trusted CA to check chains with.
		if p.Roots == nil {
			return nil, fmt.Errorf("crl needs a trusted_ca (and trust_chain_verification VERIFY_TRUST_CHAIN)")
		}
		data, err := readDataSource(vc.GetCrl())
		if err != nil {
			return nil, fmt.Errorf("crl: %w", err)
		}
		if p.CRLs, err = tlsverify.ParseCRLs(data); err != nil {
			return nil, err
		}
	}
	for _, s := range vc.GetVerifyCertificateSpki() {
		pin, err := tlsverify.ParseSPKI(s)
		if err != nil {
			return nil, err
		}
		p.SPKI = append(p.SPKI, pin)
	}
	for _, s := range vc.GetVerifyCertificateHash() {
		pin, err := tlsverify.ParseHash(s)
		if err != nil {
			return nil, err
		}
		p.Hashes = append(p.Hashes, pin)
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := sanMatcher(m.GetSanType(), m.GetMatcher(), m.GetOid())
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d]: %w", i, err)
		}
		p.SANs = append(p.SANs, sm)
	}
	//nolint:staticcheck // the deprecated field is what Istio sends
	for i, m := range vc.GetMatchSubjectAltNames() {
		sm, err := sanMatcher(tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED, m, "")
		if err != nil {
			return nil, fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		p.SANs = append(p.SANs, sm)
	}
	return p, nil
}

var sanTypes = map[tlsv3.SubjectAltNameMatcher_SanType]tlsverify.SANType{
	tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED: tlsverify.SANAny,
	tlsv3.SubjectAltNameMatcher_DNS:                  tlsverify.SANDNS,
	tlsv3.SubjectAltNameMatcher_URI:                  tlsverify.SANURI,
	tlsv3.SubjectAltNameMatcher_EMAIL:                tlsverify.SANEmail,
	tlsv3.SubjectAltNameMatcher_IP_ADDRESS:           tlsverify.SANIP,
}

// sanMatcher reads one SAN matcher: exact, prefix, suffix or contains,
// with ignore_case; regex and OTHER_NAME are NACKed.
func sanMatcher(t tlsv3.SubjectAltNameMatcher_SanType, m *matcher.StringMatcher, oid string) (tlsverify.SANMatcher, error) {
	typ, ok := sanTypes[t]
	if !ok || oid != "" {
		return tlsverify.SANMatcher{}, fmt.Errorf("san_type %s is not supported", t)
	}
	sm := tlsverify.SANMatcher{Type: typ, IgnoreCase: m.GetIgnoreCase()}
	switch v := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		sm.Exact = v.Exact
	case *matcher.StringMatcher_Prefix:
		sm.Prefix = v.Prefix
	case *matcher.StringMatcher_Suffix:
		sm.Suffix = v.Suffix
	case *matcher.StringMatcher_Contains:
		sm.Contains = v.Contains
	default:
		return sm, fmt.Errorf("only exact, prefix, suffix and contains matchers are supported")
	}
	if sm.Exact+sm.Prefix+sm.Suffix+sm.Contains == "" {
		return sm, fmt.Errorf("empty matcher")
	}
	return sm, nil
}

// wantsClientCert: a downstream context with something to check a client
// certificate against asks the client for one, as Envoy sets
// SSL_VERIFY_PEER (default_validator.cc initializeSslContexts).
func wantsClientCert(vc *tlsv3.CertificateValidationContext, meshRoots bool) bool {
	return meshRoots || vc.GetTrustedCa() != nil || len(vc.GetMatchTypedSubjectAltNames()) > 0 ||
		len(vc.GetMatchSubjectAltNames()) > 0 || len(vc.GetVerifyCertificateSpki())+len(vc.GetVerifyCertificateHash()) > 0 //nolint:staticcheck
}

func certPool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return pool, nil
}
