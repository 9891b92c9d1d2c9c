// Package ca is the mesh's built-in certificate authority: a signing CA
// (a self-signed root made at first start, or Istio's plug-in CA files)
// that signs workload certificates carrying SPIFFE identities,
// spiffe://<trust domain>/ns/<ns>/sa/<sa>, from certificate signing
// requests, as istiod's CA does, and a trust bundle of every active root.
// Private keys never leave the workloads: proxies send CSRs.
//
// The CA's key material can change while it runs (root rotation, Reload):
// each signing reads one immutable bundle, so a signature never mixes two
// generations.
package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// Limits on what the CA signs. The TTLs are istiod's defaults
// (pilot/pkg/bootstrap/istio_ca.go: DEFAULT_WORKLOAD_CERT_TTL 24h,
// MAX_WORKLOAD_CERT_TTL 90 days).
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
	// Dir, when set, keeps the CA's files across restarts (see store.go for
	// the two layouts); without it the root lives in memory.
	Dir string
	// WorkloadTTL is the lifetime of a certificate whose request asks for
	// none (istiod's DEFAULT_WORKLOAD_CERT_TTL).
	WorkloadTTL time.Duration
	// MaxWorkloadTTL is the longest lifetime a request may ask for
	// (istiod's MAX_WORKLOAD_CERT_TTL); longer requests are refused.
	MaxWorkloadTTL time.Duration
	// Kube, instead of Dir, keeps the CA in Secrets on Kubernetes
	// (kubestore.go: cacerts, else istio-ca-secret).
	Kube *KubeStore
}

// CA signs workload certificates.
type CA struct {
	opts   Options
	bundle atomic.Pointer[keyCertBundle]
	// reloadMu serialises Reload.
	reloadMu sync.Mutex
}

// keyCertBundle is one generation of the CA's key material, as Istio's
// keycertbundle.KeyCertBundle: the signing certificate and key, the
// certificates between a leaf and the roots, and the trust bundle.
type keyCertBundle struct {
	signer *x509.Certificate
	key    crypto.Signer
	// chainPEM are the certificates from the signer up to (not including)
	// the roots, PEM, empty when the signer is a root.
	chainPEM string
	// rootsPEM is the trust bundle: every active root, PEM.
	rootsPEM []byte
	roots    []*x509.Certificate
	// layout is "self-signed" or "plug-in" (Istio's cacerts).
	layout string
}

// New loads the CA's files from opts.Dir, or makes a self-signed root
// (saving it there when Dir is set).
func New(opts Options) (*CA, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = meshconfig.DefaultTrustDomain
	}
	if opts.WorkloadTTL <= 0 {
		opts.WorkloadTTL = DefaultWorkloadTTL
	}
	if opts.MaxWorkloadTTL <= 0 {
		opts.MaxWorkloadTTL = MaxWorkloadTTL
	}
	if opts.WorkloadTTL > opts.MaxWorkloadTTL {
		return nil, fmt.Errorf("ca: default workload certificate TTL %s is over the maximum %s", opts.WorkloadTTL, opts.MaxWorkloadTTL)
	}
	c := &CA{opts: opts}
	if opts.Kube != nil {
		if opts.Dir != "" {
			return nil, fmt.Errorf("ca: the CA is kept either in a folder (%s) or in Secrets of namespace %s, not both", opts.Dir, opts.Kube.Namespace)
		}
		b, err := opts.Kube.load(opts.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		c.bundle.Store(b)
		return c, nil
	}
	if opts.Dir != "" {
		b, err := loadDir(opts.Dir)
		if err == nil {
			c.bundle.Store(b)
			return c, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	b, err := newSelfSigned(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if opts.Dir != "" {
		if err := saveSelfSigned(opts.Dir, b); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	c.bundle.Store(b)
	return c, nil
}

// Reload reads opts.Dir again (after a root rotation or a plug-in CA
// change) and reports whether the signer or the trust bundle changed. On
// an error the CA keeps what it had.
func (c *CA) Reload() (bool, error) {
	if c.opts.Dir == "" && c.opts.Kube == nil {
		return false, nil
	}
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	var b *keyCertBundle
	var err error
	if c.opts.Kube != nil {
		ctx, cancel := context.WithTimeout(context.Background(), kubeStoreTimeout)
		b, err = c.opts.Kube.read(ctx)
		cancel()
	} else {
		b, err = loadDir(c.opts.Dir)
	}
	if err != nil {
		return false, fmt.Errorf("ca: reload: %w", err)
	}
	old := c.bundle.Load()
	if old.signer.Equal(b.signer) && string(old.rootsPEM) == string(b.rootsPEM) && old.chainPEM == b.chainPEM {
		return false, nil
	}
	c.bundle.Store(b)
	return true, nil
}

// RootPEM is the trust bundle every workload trusts: every active root.
func (c *CA) RootPEM() []byte { return c.bundle.Load().rootsPEM }

// SignerPEM is the certificate that signs workload certificates now.
func (c *CA) SignerPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.bundle.Load().signer.Raw})
}

// Version names the key material in force: it changes when the signer or
// the trust bundle does.
func (c *CA) Version() string {
	b := c.bundle.Load()
	h := sha256.New()
	h.Write(b.signer.Raw)
	h.Write(b.rootsPEM)
	h.Write([]byte(b.chainPEM))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// SignerFingerprint is the hex SHA-256 of the signing certificate, which a
// workload compares with its certificate's issuer to know it must renew.
func (c *CA) SignerFingerprint() string {
	sum := sha256.Sum256(c.bundle.Load().signer.Raw)
	return hex.EncodeToString(sum[:])
}

// TrustDomain is the SPIFFE trust domain the CA signs for.
func (c *CA) TrustDomain() string { return c.opts.TrustDomain }

// WorkloadTTL is the lifetime given when a request asks for none.
func (c *CA) WorkloadTTL() time.Duration { return c.opts.WorkloadTTL }

// MaxTTL is the longest lifetime a request may ask for.
func (c *CA) MaxTTL() time.Duration { return c.opts.MaxWorkloadTTL }

// TTLError is a request for a lifetime over the CA's maximum; istiod
// refuses such a request (security/pkg/pki/ca/ca.go sign, TTLError)
// rather than shortening it, and so does this CA.
type TTLError struct{ Requested, Max time.Duration }

func (e *TTLError) Error() string {
	return fmt.Sprintf("ca: requested TTL %s is greater than the max allowed TTL %s", e.Requested, e.Max)
}

// lifetime is the certificate lifetime for a requested one, as istiod's
// sign: a non-positive request gets the default; one over the maximum is
// refused.
func (c *CA) lifetime(requested time.Duration) (time.Duration, error) {
	if requested <= 0 {
		return c.opts.WorkloadTTL, nil
	}
	if requested > c.opts.MaxWorkloadTTL {
		return 0, &TTLError{Requested: requested, Max: c.opts.MaxWorkloadTTL}
	}
	return requested, nil
}

// Sign issues a workload certificate for a PEM CSR. The CSR must name
// exactly one SPIFFE identity in this trust domain; the certificate
// carries that identity and nothing the CSR asks for besides. It returns
// the response chain as istiod's CreateCertificate does: the leaf, the
// certificates between it and the roots (plug-in CA), then the trust
// bundle as one PEM element holding every active root.
func (c *CA) Sign(csrPEM []byte, ttl time.Duration) ([]string, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	id := csr.URIs[0]
	if err := c.checkIdentity(id); err != nil {
		return nil, err
	}
	lifetime, err := c.lifetime(ttl)
	if err != nil {
		return nil, err
	}
	b := c.bundle.Load()
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(b.signer.NotAfter) {
		notAfter = b.signer.NotAfter
	}
	// An empty subject, as istiod's CA signs workload certificates
	// (security/pkg/pki/util/generate_cert.go genCertTemplateFromCSR):
	// the identity is the URI SAN alone (marked critical, RFC 5280), and
	// XFCC shows Subject="" as on Istio's pages.
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		URIs:         []*url.URL{id},
		NotBefore:    now.Add(-5 * time.Minute), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.signer, csr.PublicKey, b.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign: %w", err)
	}
	out := []string{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
	if b.chainPEM != "" {
		out = append(out, b.chainPEM)
	}
	return append(out, string(b.rootsPEM)), nil
}

func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
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
	return csr, nil
}

// CSRIdentity is the one SPIFFE ID a PEM CSR names (checked as Sign does).
func (c *CA) CSRIdentity(csrPEM []byte) (namespace, serviceAccount string, err error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return "", "", err
	}
	if err := c.checkIdentity(csr.URIs[0]); err != nil {
		return "", "", err
	}
	parts := strings.Split(strings.TrimPrefix(csr.URIs[0].Path, "/"), "/")
	return parts[1], parts[3], nil
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

// newKeySerial makes a P-256 key and a serial number for a certificate
// the CA makes for itself (a root, its serving certificate).
func newKeySerial() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	return key, serial, nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
