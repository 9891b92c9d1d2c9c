package ca

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"sync"
	"time"
)

// IstiodSAN is the name istiod's serving certificate carries and proxies
// verify (Istio's istiod.istio-system.svc, pilot/pkg/bootstrap/certcontroller.go).
const IstiodSAN = "istiod.istio-system.svc"

const servingTTL = 24 * time.Hour

// ServingCert is the control plane's own TLS certificate for the xDS/CA
// port, signed by the mesh CA as istiod's is by its CA, for IstiodSAN
// and the listen host; it is made anew when half its life has passed or
// the CA's signer changed, so a root rotation reaches it too.
type ServingCert struct {
	CA *CA
	// Hosts are the names and IPs besides IstiodSAN.
	Hosts []string

	mu      sync.Mutex
	cert    *tls.Certificate
	version string
	renewAt time.Time
}

// ServingHosts are the SANs for a listen address: its host, or every
// loopback name when it listens on all addresses.
func ServingHosts(listen string) []string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	return []string{host}
}

// GetCertificate is the tls.Config callback.
func (s *ServingCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.CA.Version(); s.cert == nil || v != s.version || time.Now().After(s.renewAt) {
		cert, err := s.CA.issueServing(s.Hosts)
		if err != nil {
			return nil, err
		}
		s.cert, s.version = cert, v
		s.renewAt = cert.Leaf.NotBefore.Add(cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore) / 2)
	}
	return s.cert, nil
}

func (c *CA) issueServing(hosts []string) (*tls.Certificate, error) {
	b := c.bundle.Load()
	key, serial, err := newKeySerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{c.opts.TrustDomain}, CommonName: IstiodSAN},
		DNSNames:     []string{IstiodSAN},
		NotBefore:    now.Add(-5 * time.Minute), NotAfter: now.Add(servingTTL),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(b.signer.NotAfter) {
		tmpl.NotAfter = b.signer.NotAfter
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != IstiodSAN {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.signer, &key.PublicKey, b.key)
	if err != nil {
		return nil, fmt.Errorf("ca: serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	if b.chainPEM != "" {
		chain, err := parseCerts([]byte(b.chainPEM))
		if err != nil {
			return nil, err
		}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
	}
	return cert, nil
}
