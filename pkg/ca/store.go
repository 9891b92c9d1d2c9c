package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The CA folder (--ca-dir) holds one of two layouts.
//
// Self-signed (what the CA makes by itself, and what `sluice ca rotate`
// manages): root-cert.pem is the trust bundle, one or more self-signed
// roots, and root-key.pem the key of the one that signs, which is the root
// in root-cert.pem with that key's public key.
//
// Plug-in, Istio's cacerts (istio.io "Plug in CA Certificates"): ca-cert.pem
// and ca-key.pem sign (an intermediate), cert-chain.pem is the chain from
// ca-cert.pem up to the root, root-cert.pem the trust bundle (every root,
// so a new root can be added before it signs and removed after).
const (
	FileRootCert  = "root-cert.pem"
	FileRootKey   = "root-key.pem"
	FileCACert    = "ca-cert.pem"
	FileCAKey     = "ca-key.pem"
	FileCertChain = "cert-chain.pem"
)

// caFiles reads one of the CA's files by name (os.ErrNotExist when it
// is not there): from the CA folder, or from a Secret's data (kubestore.go).
type caFiles func(name string) ([]byte, error)

func dirFiles(dir string) caFiles {
	return func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
}

// loadDir reads the CA folder in either layout; os.ErrNotExist when it
// holds neither.
func loadDir(dir string) (*keyCertBundle, error) {
	return loadFiles(dirFiles(dir))
}

// loadFiles reads either layout.
func loadFiles(files caFiles) (*keyCertBundle, error) {
	if _, err := files(FileCAKey); err == nil {
		return loadPlugin(files)
	}
	return loadSelfSigned(files)
}

func loadSelfSigned(files caFiles) (*keyCertBundle, error) {
	rootsPEM, err := files(FileRootCert)
	if err != nil {
		return nil, err
	}
	key, err := readKey(files, FileRootKey)
	if err != nil {
		return nil, err
	}
	roots, err := parseCerts(rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileRootCert, err)
	}
	b := &keyCertBundle{key: key, rootsPEM: rootsPEM, roots: roots, layout: "self-signed"}
	for _, r := range roots {
		if !r.IsCA {
			return nil, fmt.Errorf("%s: certificate %q is not a CA", FileRootCert, r.Subject)
		}
		if publicKeyEqual(r.PublicKey, key.Public()) {
			b.signer = r
		}
	}
	if b.signer == nil {
		return nil, fmt.Errorf("%s: no root matches the key in %s", FileRootCert, FileRootKey)
	}
	return b, nil
}

func loadPlugin(files caFiles) (*keyCertBundle, error) {
	certPEM, err := files(FileCACert)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: %w", err)
	}
	key, err := readKey(files, FileCAKey)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: %w", err)
	}
	rootsPEM, err := files(FileRootCert)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: %w", err)
	}
	signers, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileCACert, err)
	}
	roots, err := parseCerts(rootsPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileRootCert, err)
	}
	signer := signers[0]
	if !signer.IsCA || !publicKeyEqual(signer.PublicKey, key.Public()) {
		return nil, fmt.Errorf("plug-in CA: %s is not a CA certificate for the key in %s", FileCACert, FileCAKey)
	}
	chainPEM := ""
	if b, err := files(FileCertChain); err == nil && len(b) > 0 {
		chainPEM = string(b)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("plug-in CA: %w", err)
	} else if !isSelfSigned(signer) {
		chainPEM = string(certPEM)
	}
	b := &keyCertBundle{signer: signer, key: key, chainPEM: chainPEM, rootsPEM: rootsPEM, roots: roots, layout: "plug-in"}
	if err := b.verifySigner(); err != nil {
		return nil, fmt.Errorf("plug-in CA: %w", err)
	}
	return b, nil
}

// verifySigner checks that the signer chains to a root of the bundle, so
// every certificate it signs verifies at a peer holding the bundle.
func (b *keyCertBundle) verifySigner() error {
	pool := x509.NewCertPool()
	for _, r := range b.roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	if b.chainPEM != "" {
		chain, err := parseCerts([]byte(b.chainPEM))
		if err != nil {
			return fmt.Errorf("%s: %w", FileCertChain, err)
		}
		for _, c := range chain {
			inter.AddCert(c)
		}
	}
	_, err := b.signer.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("%s does not chain to a root in %s: %w", FileCACert, FileRootCert, err)
	}
	return nil
}

// newSelfSigned makes a root with a new key.
func newSelfSigned(trustDomain string) (*keyCertBundle, error) {
	key, serial, err := newKeySerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{Organization: []string{trustDomain},
			CommonName: "sluice mesh root CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(rootTTL),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyCertBundle{signer: root, key: key, roots: []*x509.Certificate{root},
		rootsPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), layout: "self-signed"}, nil
}

// saveSelfSigned writes the bundle then the key, each atomically, so a
// reader between the two sees a consistent folder: the new bundle still
// holds the root of the old key.
func saveSelfSigned(dir string, b *keyCertBundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(b.key)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, FileRootCert), b.rootsPEM, 0o644); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, FileRootKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// Rotate makes a new self-signed root in dir that signs from now on, and
// keeps every root of the bundle trusted beside it (the new one first),
// so workloads holding certificates from an old root stay verifiable
// until they renew. It returns the new root.
func Rotate(dir, trustDomain string) (*x509.Certificate, error) {
	old, err := loadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ca rotate: %w", err)
	}
	if old.layout != "self-signed" {
		return nil, fmt.Errorf("ca rotate: %s holds a plug-in CA (%s): rotate it by Istio's procedure: add the new root to %s, then replace %s, %s and %s", dir, FileCAKey, FileRootCert, FileCACert, FileCAKey, FileCertChain)
	}
	if trustDomain == "" {
		trustDomain = firstOrg(old.signer)
	}
	b, err := newSelfSigned(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca rotate: %w", err)
	}
	b.rootsPEM = append(b.rootsPEM, old.rootsPEM...)
	if err := saveSelfSigned(dir, b); err != nil {
		return nil, fmt.Errorf("ca rotate: %w", err)
	}
	return b.signer, nil
}

// RetireOld removes from dir's trust bundle every root but the one that
// signs. Workloads whose certificates an old root signed are no longer
// trusted by peers that get the new bundle, so run it once every
// workload has renewed (one workload TTL after Rotate). It returns the
// roots removed.
func RetireOld(dir string) ([]*x509.Certificate, error) {
	b, err := loadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ca retire-old: %w", err)
	}
	if b.layout != "self-signed" {
		return nil, fmt.Errorf("ca retire-old: %s holds a plug-in CA: remove the old root from %s by hand", dir, FileRootCert)
	}
	var removed []*x509.Certificate
	for _, r := range b.roots {
		if !r.Equal(b.signer) {
			removed = append(removed, r)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	keep := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.signer.Raw})
	if err := writeAtomic(filepath.Join(dir, FileRootCert), keep, 0o644); err != nil {
		return nil, fmt.Errorf("ca retire-old: %w", err)
	}
	return removed, nil
}

// Roots lists the trust bundle of dir and which root signs.
func Roots(dir string) (roots []*x509.Certificate, signer *x509.Certificate, err error) {
	b, err := loadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	return b.roots, b.signer, nil
}

func firstOrg(c *x509.Certificate) string {
	if len(c.Subject.Organization) > 0 {
		return c.Subject.Organization[0]
	}
	return ""
}

func readKey(files caFiles, name string) (crypto.Signer, error) {
	b, err := files(name)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM block", name)
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", name)
	}
	return s, nil
}

// parseCerts reads every CERTIFICATE block of a PEM bundle (at least one).
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

// writeAtomic writes a file through a temporary file renamed into place.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
