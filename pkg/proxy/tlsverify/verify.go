// Package tlsverify checks a peer's certificate as Envoy's default
// certificate validator does (source/common/tls/cert_validator/
// default_validator.cc): the chain against trusted roots, the subject alt
// names, SPKI and certificate hash pins, and revocation by CRL. The
// proxy's TLS compile (pkg/proxy/dataplane) builds a Policy from a
// CertificateValidationContext; the handshake calls Verify.
package tlsverify

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Policy is what a peer certificate must satisfy. The zero Policy accepts
// any certificate.
type Policy struct {
	// Roots verifies the chain; nil leaves the chain unverified (Envoy
	// without trusted_ca, or trust_chain_verification ACCEPT_UNTRUSTED).
	Roots *x509.CertPool
	// SANs: when set, at least one must match a subject alt name of the
	// leaf (match_typed_subject_alt_names / match_subject_alt_names).
	SANs []SANMatcher
	// SPKI and Hashes are SHA-256 pins of the leaf's SubjectPublicKeyInfo
	// and of the whole leaf (verify_certificate_spki / _hash); when either
	// is set, a match in either list is required, as in Envoy.
	SPKI, Hashes [][]byte
	// CRLs revoke certificates (crl). As in Envoy (BoringSSL's
	// X509_V_FLAG_CRL_CHECK_ALL), every certificate of the verified chain
	// below the root needs a current CRL from its issuer.
	CRLs []*x509.RevocationList
}

// Verify checks the certificates a peer presented (leaf first).
func (p *Policy) Verify(certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("no certificate")
	}
	leaf := certs[0]
	if p.Roots != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		// Envoy sets no purpose: any extended key usage is accepted.
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return err
		}
		if len(p.CRLs) > 0 {
			if err := CheckRevocation(chains, p.CRLs, time.Now()); err != nil {
				return err
			}
		}
	}
	if len(p.SPKI)+len(p.Hashes) > 0 && !p.pinned(leaf) {
		return errors.New("certificate matches none of verify_certificate_spki/verify_certificate_hash")
	}
	if len(p.SANs) > 0 && !MatchSANs(leaf, p.SANs) {
		return fmt.Errorf("certificate subject alt names %s match none of %s", describeSANs(leaf), describeMatchers(p.SANs))
	}
	return nil
}

func (p *Policy) pinned(leaf *x509.Certificate) bool {
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	for _, pin := range p.SPKI {
		if bytes.Equal(pin, spki[:]) {
			return true
		}
	}
	hash := sha256.Sum256(leaf.Raw)
	for _, pin := range p.Hashes {
		if bytes.Equal(pin, hash[:]) {
			return true
		}
	}
	return false
}

// ParseSPKI reads a verify_certificate_spki value: base64 of a SHA-256.
func ParseSPKI(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("verify_certificate_spki %q: not the base64 of a SHA-256 digest", s)
	}
	return b, nil
}

// ParseHash reads a verify_certificate_hash value: the hex SHA-256 of the
// certificate, with or without colons, either case.
func ParseHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("verify_certificate_hash %q: not a hex SHA-256 digest", s)
	}
	return b, nil
}

// ParseCRLs reads one or more PEM (or a single DER) certificate
// revocation lists.
func ParseCRLs(data []byte) ([]*x509.RevocationList, error) {
	var out []*x509.RevocationList
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crl: %w", err)
		}
		out = append(out, crl)
	}
	if len(out) == 0 {
		crl, err := x509.ParseRevocationList(data)
		if err != nil {
			return nil, errors.New("crl: no PEM X509 CRL block and not a DER CRL")
		}
		out = append(out, crl)
	}
	return out, nil
}

// CheckRevocation passes when one of chains has, for every certificate
// below its root, a current CRL signed by that certificate's issuer that
// does not list it.
func CheckRevocation(chains [][]*x509.Certificate, crls []*x509.RevocationList, now time.Time) error {
	var last error
	for _, chain := range chains {
		if last = checkChain(chain, crls, now); last == nil {
			return nil
		}
	}
	if last == nil {
		last = errors.New("no verified chain")
	}
	return last
}

func checkChain(chain []*x509.Certificate, crls []*x509.RevocationList, now time.Time) error {
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		crl := issuerCRL(issuer, crls, now)
		if crl == nil {
			return fmt.Errorf("certificate %q: no current CRL from its issuer %q", cert.Subject, issuer.Subject)
		}
		for _, rc := range crl.RevokedCertificateEntries {
			if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return fmt.Errorf("certificate %q (serial %s) is revoked", cert.Subject, cert.SerialNumber)
			}
		}
	}
	return nil
}

func issuerCRL(issuer *x509.Certificate, crls []*x509.RevocationList, now time.Time) *x509.RevocationList {
	for _, crl := range crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			continue // expired: BoringSSL's X509_V_ERR_CRL_HAS_EXPIRED
		}
		return crl
	}
	return nil
}

// SANType is the kind of subject alt name a matcher looks at.
type SANType int

// The subject alt name types Envoy's SubjectAltNameMatcher names.
const (
	SANAny SANType = iota // the deprecated untyped match_subject_alt_names: DNS, URI, email or IP
	SANDNS
	SANURI
	SANEmail
	SANIP
)

// SANMatcher is a StringMatcher on one type of subject alt name.
type SANMatcher struct {
	Type SANType
	// Exact, Prefix, Suffix, Contains: exactly one is set.
	Exact, Prefix, Suffix, Contains string
	IgnoreCase                      bool
}

// MatchSANs reports whether any matcher matches any SAN of leaf.
func MatchSANs(leaf *x509.Certificate, ms []SANMatcher) bool {
	for _, m := range ms {
		if m.Type == SANAny || m.Type == SANDNS {
			for _, n := range leaf.DNSNames {
				if m.matchDNS(n) {
					return true
				}
			}
		}
		if m.Type == SANAny || m.Type == SANURI {
			for _, u := range leaf.URIs {
				if m.match(u.String()) {
					return true
				}
			}
		}
		if m.Type == SANAny || m.Type == SANEmail {
			for _, e := range leaf.EmailAddresses {
				if m.match(e) {
					return true
				}
			}
		}
		if m.Type == SANAny || m.Type == SANIP {
			for _, ip := range leaf.IPAddresses {
				if m.match(ip.String()) {
					return true
				}
			}
		}
	}
	return false
}

func (m SANMatcher) match(v string) bool {
	want := m.Exact + m.Prefix + m.Suffix + m.Contains
	if m.IgnoreCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch {
	case m.Exact != "":
		return v == want
	case m.Prefix != "":
		return strings.HasPrefix(v, want)
	case m.Suffix != "":
		return strings.HasSuffix(v, want)
	case m.Contains != "":
		return strings.Contains(v, want)
	}
	return false
}

// matchDNS: an exact matcher matches a wildcard DNS SAN covering it, as
// Envoy's DnsSanMatcher (Utility::dnsNameMatch) does.
func (m SANMatcher) matchDNS(san string) bool {
	if m.match(san) {
		return true
	}
	if m.Exact == "" || !strings.HasPrefix(san, "*.") || net.ParseIP(m.Exact) != nil {
		return false
	}
	name := strings.ToLower(m.Exact)
	_, rest, ok := strings.Cut(name, ".")
	return ok && rest == strings.ToLower(san[2:])
}

func describeSANs(c *x509.Certificate) string {
	var all []string
	all = append(all, c.DNSNames...)
	for _, u := range c.URIs {
		all = append(all, u.String())
	}
	all = append(all, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		all = append(all, ip.String())
	}
	return "[" + strings.Join(all, " ") + "]"
}

func describeMatchers(ms []SANMatcher) string {
	var all []string
	for _, m := range ms {
		all = append(all, m.Exact+m.Prefix+m.Suffix+m.Contains)
	}
	return "[" + strings.Join(all, " ") + "]"
}
