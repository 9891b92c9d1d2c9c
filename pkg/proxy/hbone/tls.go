package hbone

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// alpnH2 is the one protocol HBONE speaks over its TLS (ztunnel
// src/tls/certificate.rs: alpn_protocols = ["h2"] on both sides).
const alpnH2 = "h2"

// clientTLS is ztunnel's outbound connector (src/tls/workload.rs
// IdentityVerifier): the server chain verified against the trust bundle and
// its SPIFFE URI SAN one of peerIDs, not hostname verification (ztunnel
// dials with a dummy server name). TLS 1.2 and 1.3 (ztunnel's tls_versions
// with TLS12_ENABLED; 1.3 is preferred by negotiation).
func clientTLS(cert func() (*tls.Certificate, error), roots func() *x509.CertPool, peerIDs []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{alpnH2},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert()
		},
		// The chain and identity are checked below; there is no host name.
		InsecureSkipVerify: true,
		// VerifyConnection runs on every handshake, resumed ones too.
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyChain(cs.PeerCertificates, roots(), x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if !slices.Contains(peerIDs, id) {
				return fmt.Errorf("server identity %q is none of %v", id, peerIDs)
			}
			return nil
		},
	}
}

// sourceCert checks that the certificate is the one of the pool key's
// source identity (a connection keyed by one identity must not carry
// another's).
func sourceCert(cert func() (*tls.Certificate, error), sourceID string) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) {
		c, err := cert()
		if err != nil || sourceID == "" || len(c.Certificate) == 0 {
			return c, err
		}
		leaf := c.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("source certificate: %w", err)
			}
		}
		id, err := spiffeID(leaf)
		if err == nil && id != sourceID {
			err = fmt.Errorf("source certificate is %q, not the target's SourceID %q", id, sourceID)
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// serverTLS is ztunnel's inbound acceptor: a client certificate required and
// verified against the trust bundle (rustls WebPkiClientVerifier), its
// SPIFFE ID read from the URI SAN; when trustDomain is set the ID must be in
// it (verify_trust_domain).
func serverTLS(cert func() (*tls.Certificate, error), roots func() *x509.CertPool, trustDomain string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{alpnH2},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert()
		},
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := verifyChain(cs.PeerCertificates, roots(), x509.ExtKeyUsageClientAuth)
			if err != nil {
				return err
			}
			if trustDomain != "" && !inTrustDomain(id, trustDomain) {
				return fmt.Errorf("client identity %q is not in trust domain %q", id, trustDomain)
			}
			return nil
		},
	}
}

func inTrustDomain(id, td string) bool {
	p := "spiffe://" + td + "/"
	return len(id) > len(p) && id[:len(p)] == p
}

// verifyChain checks a peer chain against roots for usage and returns the
// leaf's one SPIFFE ID.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (string, error) {
	if roots == nil {
		return "", errors.New("no trust bundle")
	}
	if len(certs) == 0 {
		return "", errors.New("peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", fmt.Errorf("peer certificate is not from the mesh CA: %w", err)
	}
	return spiffeID(certs[0])
}

func spiffeID(c *x509.Certificate) (string, error) {
	var id string
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" {
			if id != "" {
				return "", errors.New("peer certificate has more than one SPIFFE ID")
			}
			id = u.String()
		}
	}
	if id == "" {
		return "", errors.New("peer certificate has no SPIFFE ID")
	}
	return id, nil
}

// peerID is the verified SPIFFE ID of a completed handshake.
func peerID(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer sent no certificate")
	}
	return spiffeID(cs.PeerCertificates[0])
}

func checkALPN(cs tls.ConnectionState) error {
	if cs.NegotiatedProtocol != alpnH2 {
		return fmt.Errorf("peer did not negotiate ALPN %q (got %q)", alpnH2, cs.NegotiatedProtocol)
	}
	return nil
}
