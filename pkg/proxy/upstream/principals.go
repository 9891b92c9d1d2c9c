package upstream

import (
	"crypto/tls"
	"crypto/x509"
)

// Principals are the identities of an upstream TLS connection as Istio's
// stats filter reads them on the client side (istio/proxy
// source/extensions/filters/http/istio_stats/istio_stats.cc,
// populatePeerInfo, Reporter::ClientSidecar: the upstream
// SSL connection's uriSanLocalCertificate()[0] and
// uriSanPeerCertificate()[0]). They are worked out once per connection,
// at its handshake, so a request reads two strings.
type Principals struct {
	// Local is the first URI SAN of the certificate this proxy presented
	// (its SPIFFE identity in the mesh); "" when it sent none.
	Local string
	// Peer is the first URI SAN of the server's certificate, which the
	// handshake verified (or accepted, with InsecureSkipVerify); "" for
	// plaintext or a certificate without one.
	Peer string
}

// firstURISAN is a certificate's first URI SAN ("" for none or nil).
func firstURISAN(c *x509.Certificate) string {
	if c == nil || len(c.URIs) == 0 {
		return ""
	}
	return c.URIs[0].String()
}

// recordClientCert makes cfg note the client certificate its handshake
// sends in *sent. A GetClientCertificate callback is wrapped; static
// Certificates are chosen as crypto/tls chooses them
// (Config.getClientCertificate: the first the server's request supports,
// else none).
func recordClientCert(cfg *tls.Config, sent **tls.Certificate) {
	get := cfg.GetClientCertificate
	if get == nil {
		if len(cfg.Certificates) == 0 {
			return
		}
		certs := cfg.Certificates
		get = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			for i := range certs {
				if cri.SupportsCertificate(&certs[i]) == nil {
					return &certs[i], nil
				}
			}
			return new(tls.Certificate), nil
		}
	}
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := get(cri)
		if err == nil {
			*sent = c
		}
		return c, err
	}
}

// principalsOf reads the identities of a completed handshake: the peer's
// from its leaf certificate, ours from the certificate sent (nil: none).
func principalsOf(cs *tls.ConnectionState, sent *tls.Certificate) Principals {
	var p Principals
	if len(cs.PeerCertificates) > 0 {
		p.Peer = firstURISAN(cs.PeerCertificates[0])
	}
	if sent != nil && len(sent.Certificate) > 0 {
		leaf := sent.Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(sent.Certificate[0])
		}
		p.Local = firstURISAN(leaf)
	}
	return p
}
