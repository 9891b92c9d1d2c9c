package identity

import (
	"crypto/x509"
	"encoding/pem"
	"strconv"
	"time"
)

// CertsView is the proxy admin's /certs, in Envoy's shape
// (admin.v3.Certificates: per certificate pair, its CA certificates and
// its chain, each with serial, SANs, validity and days until expiry).
type CertsView struct {
	Certificates []CertificatePair `json:"certificates"`
}

// CertificatePair is the workload certificate (SDS "default") and the
// trust bundle (SDS "ROOTCA").
type CertificatePair struct {
	CACert    []CertDetails `json:"ca_cert"`
	CertChain []CertDetails `json:"cert_chain"`
}

// CertDetails is Envoy's admin.v3.CertificateDetails.
type CertDetails struct {
	Path                string           `json:"path"`
	SerialNumber        string           `json:"serial_number"`
	Subject             string           `json:"subject,omitempty"`
	Issuer              string           `json:"issuer,omitempty"`
	SubjectAltNames     []map[string]any `json:"subject_alt_names,omitempty"`
	DaysUntilExpiration string           `json:"days_until_expiration"`
	ValidFrom           time.Time        `json:"valid_from"`
	ExpirationTime      time.Time        `json:"expiration_time"`
}

// Certs describes the certificate and trust bundle in force.
func (w *Workload) Certs() CertsView {
	var pair CertificatePair
	if p := w.rootsPEM.Load(); p != nil {
		for rest := *p; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				pair.CACert = append(pair.CACert, details("sds:ROOTCA", c))
			}
		}
	}
	if cert := w.cert.Load(); cert != nil {
		for _, raw := range cert.Certificate {
			if c, err := x509.ParseCertificate(raw); err == nil {
				pair.CertChain = append(pair.CertChain, details("sds:default", c))
			}
		}
	}
	if pair.CACert == nil && pair.CertChain == nil {
		return CertsView{Certificates: []CertificatePair{}}
	}
	return CertsView{Certificates: []CertificatePair{pair}}
}

func details(path string, c *x509.Certificate) CertDetails {
	d := CertDetails{Path: path, SerialNumber: c.SerialNumber.Text(16), Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		DaysUntilExpiration: strconv.Itoa(int(time.Until(c.NotAfter).Hours() / 24)),
		ValidFrom:           c.NotBefore.UTC(), ExpirationTime: c.NotAfter.UTC()}
	for _, u := range c.URIs {
		d.SubjectAltNames = append(d.SubjectAltNames, map[string]any{"uri": u.String()})
	}
	for _, n := range c.DNSNames {
		d.SubjectAltNames = append(d.SubjectAltNames, map[string]any{"dns": n})
	}
	return d
}
