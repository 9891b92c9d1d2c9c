// Package ca is the mesh's built-in certificate authority: a root (made at
// first start, or loaded from a folder) that signs workload certificates
// carrying SPIFFE identities, spiffe://<trust domain>/ns/<ns>/sa/<sa>,
// from certificate signing requests, as istiod's CA does. Private keys
// never leave the workloads: proxies send CSRs.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// Limits on what the CA signs.
const (
	DefaultWorkloadTTL = 24 * time.Hour
	MaxWorkloadTTL     = 90 * 24 * time.Hour
	rootTTL            = 10 * 365 * 24 * time.Hour
	maxCSRBytes        = 64 << 10
)

// Options configure a CA.
type Options struct {
	// TrustDomain is the SPIFFE trust domain (MeshConfig.trustDomain).
	TrustDomain string
	// Dir, when set, keeps the root certificate and key (root-cert.pem,
	// root-key.pem) across restarts; without it the root lives in memory.
	Dir string
	// WorkloadTTL is the default lifetime of workload certificates.
	WorkloadTTL time.Duration
}

// CA signs workload certificates.
type CA struct {
	opts    Options
	root    *x509.Certificate
	key     crypto.Signer
	rootPEM []byte
}

// New loads the root from opts.Dir, or makes one (saving it there when Dir
// is set).
func New(opts Options) (*CA, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = meshconfig.DefaultTrustDomain
	}
	if opts.WorkloadTTL <= 0 {
		opts.WorkloadTTL = DefaultWorkloadTTL
	}
	c := &CA{opts: opts}
	if opts.Dir != "" {
		if err := c.load(); err == nil {
			return c, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	if err := c.generate(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if opts.Dir != "" {
		if err := c.save(); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	return c, nil
}

// RootPEM is the root certificate every workload trusts.
func (c *CA) RootPEM() []byte { return c.rootPEM }

// TrustDomain is the SPIFFE trust domain the CA signs for.
func (c *CA) TrustDomain() string { return c.opts.TrustDomain }

func (c *CA) generate() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{c.opts.TrustDomain}, CommonName: "sluice mesh root CA"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(rootTTL),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	c.root, _ = x509.ParseCertificate(der)
	c.key = key
	c.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

func (c *CA) save() error {
	if err := os.MkdirAll(c.opts.Dir, 0o700); err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.opts.Dir, "root-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.opts.Dir, "root-cert.pem"), c.rootPEM, 0o644)
}

func (c *CA) load() error {
	certPEM, err := os.ReadFile(filepath.Join(c.opts.Dir, "root-cert.pem"))
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(c.opts.Dir, "root-key.pem"))
	if err != nil {
		return err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return fmt.Errorf("%s: root-cert.pem or root-key.pem holds no PEM block", c.opts.Dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return fmt.Errorf("root-cert.pem: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return fmt.Errorf("root-key.pem: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok || !cert.IsCA {
		return fmt.Errorf("%s: not a CA certificate and signing key", c.opts.Dir)
	}
	c.root, c.key, c.rootPEM = cert, signer, certPEM
	return nil
}

// Sign issues a workload certificate for a PEM CSR. The CSR must name
// exactly one SPIFFE identity in this trust domain; the certificate
// carries that identity and nothing the CSR asks for besides. It returns
// the chain, leaf first, as PEM.
func (c *CA) Sign(csrPEM []byte, ttl time.Duration) ([]string, error) {
	if len(csrPEM) > maxCSRBytes {
		return nil, fmt.Errorf("ca: CSR of %d bytes is over the limit", len(csrPEM))
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("ca: no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: CSR signature: %w", err)
	}
	if len(csr.URIs) != 1 {
		return nil, fmt.Errorf("ca: CSR must name one SPIFFE identity, names %d URIs", len(csr.URIs))
	}
	id := csr.URIs[0]
	if err := c.checkIdentity(id); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = c.opts.WorkloadTTL
	}
	ttl = min(ttl, MaxWorkloadTTL)
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{c.opts.TrustDomain}},
		URIs:         []*url.URL{id},
		NotBefore:    now.Add(-5 * time.Minute), NotAfter: now.Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, csr.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	return []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(c.rootPEM)}, nil
}

// checkIdentity accepts spiffe://<trust domain>/ns/<ns>/sa/<sa>.
func (c *CA) checkIdentity(u *url.URL) error {
	if u.Scheme != "spiffe" || u.Host != c.opts.TrustDomain {
		return fmt.Errorf("ca: identity %q is not in trust domain %q", u, c.opts.TrustDomain)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return fmt.Errorf("ca: identity %q is not spiffe://%s/ns/<namespace>/sa/<service account>", u, c.opts.TrustDomain)
	}
	return nil
}

// Identity is a workload's SPIFFE ID.
func Identity(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
