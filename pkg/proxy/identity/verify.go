package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// VerifyPeer checks a peer's chain against the trust bundle (any of its
// roots, so during a root rotation certificates from the old and the new
// root both verify) and, when ids is not empty, that its SPIFFE ID is one
// of them (Envoy's SAN match).
func (w *Workload) VerifyPeer(rawCerts [][]byte, ids []string) error {
	roots := w.Roots()
	if roots == nil {
		return ErrNotReady
	}
	if len(rawCerts) == 0 {
		return errors.New("peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("peer certificate is not from the mesh CA: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	for _, u := range certs[0].URIs {
		for _, id := range ids {
			if u.String() == id {
				return nil
			}
		}
	}
	return fmt.Errorf("peer identity %v is none of %v", certs[0].URIs, ids)
}
