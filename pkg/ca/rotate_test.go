package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verifyAt verifies a response chain's leaf at a peer that holds only
// bundlePEM (and the intermediates the chain carries), as a proxy does.
func verifyAt(t *testing.T, bundlePEM []byte, chain []string) error {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundlePEM) {
		t.Fatal("bundle is not PEM")
	}
	inter := x509.NewCertPool()
	for _, p := range chain[1 : len(chain)-1] {
		inter.AppendCertsFromPEM([]byte(p))
	}
	_, err := leafOf(t, chain).Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// Root rotation: the new root signs at once, the old stays in the bundle,
// certificates from either verify at a peer holding only the bundle; once
// the old root is retired, its certificates no longer do.
func TestRootRotation(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	oldBundle := c.RootPEM()
	oldVersion := c.Version()
	fromOld, err := c.Sign(csrFor(t, Identity("cluster.local", "a", "old")), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := Rotate(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Reload(); err != nil || !changed {
		t.Fatalf("Reload after rotate: changed=%v err=%v", changed, err)
	}
	if c.Version() == oldVersion {
		t.Error("version did not change")
	}
	if n := strings.Count(string(c.RootPEM()), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("bundle holds %d roots, want the new and the old", n)
	}
	fromNew, err := c.Sign(csrFor(t, Identity("cluster.local", "a", "new")), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leafOf(t, fromNew).CheckSignatureFrom(newRoot) != nil {
		t.Error("after rotation the new root must sign")
	}
	if chainBundle := fromNew[len(fromNew)-1]; chainBundle != string(c.RootPEM()) {
		t.Error("the response must carry the whole trust bundle")
	}
	bundle := c.RootPEM()
	if err := verifyAt(t, bundle, fromOld); err != nil {
		t.Errorf("a certificate from the old root must verify during rotation: %v", err)
	}
	if err := verifyAt(t, bundle, fromNew); err != nil {
		t.Errorf("a certificate from the new root must verify at a peer holding the bundle: %v", err)
	}
	if err := verifyAt(t, oldBundle, fromNew); err == nil {
		t.Error("sanity: the old root alone cannot verify the new certificate")
	}
	if changed, _ := c.Reload(); changed {
		t.Error("Reload without a change reported one")
	}

	removed, err := RetireOld(dir)
	if err != nil || len(removed) != 1 {
		t.Fatalf("RetireOld: %d removed, %v", len(removed), err)
	}
	if changed, err := c.Reload(); err != nil || !changed {
		t.Fatalf("Reload after retire: %v %v", changed, err)
	}
	if err := verifyAt(t, c.RootPEM(), fromOld); err == nil {
		t.Error("a certificate from a retired root must not verify")
	}
	if err := verifyAt(t, c.RootPEM(), fromNew); err != nil {
		t.Errorf("the signing root's certificate must still verify: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, FileRootKey)); fi.Mode().Perm() != 0o600 {
		t.Errorf("root key mode %v, want 0600", fi.Mode().Perm())
	}
}

// A folder the CA cannot use leaves the CA with what it had.
func TestReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Version()
	os.WriteFile(filepath.Join(dir, FileRootKey), []byte("garbage"), 0o600)
	if _, err := c.Reload(); err == nil {
		t.Error("a broken key must be reported")
	}
	if c.Version() != before {
		t.Error("a failed reload changed the CA")
	}
	if _, err := c.Sign(csrFor(t, Identity("cluster.local", "a", "b")), 0); err != nil {
		t.Errorf("the CA must keep signing: %v", err)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Istio's plug-in CA files: an intermediate signs; the response carries
// cert-chain.pem and the root bundle, and the leaf verifies through them.
func TestPluginCA(t *testing.T) {
	dir := t.TempDir()
	root, err := newSelfSigned("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7),
		Subject: pkix.Name{CommonName: "intermediate"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.signer, &key.PublicKey, root.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, FileCACert), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, FileCAKey), "PRIVATE KEY", kb)
	writePEM(t, filepath.Join(dir, FileCertChain), "CERTIFICATE", der)
	os.WriteFile(filepath.Join(dir, FileRootCert), root.rootsPEM, 0o644)
	c, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := c.Sign(csrFor(t, Identity("cluster.local", "a", "b")), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 {
		t.Fatalf("chain of %d, want leaf, cert-chain, roots", len(chain))
	}
	if err := verifyAt(t, root.rootsPEM, chain); err != nil {
		t.Errorf("leaf does not verify through the plug-in chain: %v", err)
	}
	if _, err := Rotate(dir, ""); err == nil || !strings.Contains(err.Error(), "plug-in") {
		t.Errorf("rotate of a plug-in CA: %v", err)
	}
	// An intermediate that does not chain to the bundle is refused.
	other, _ := newSelfSigned("cluster.local")
	os.WriteFile(filepath.Join(dir, FileRootCert), other.rootsPEM, 0o644)
	if _, err := New(Options{Dir: dir}); err == nil {
		t.Error("a plug-in CA not chaining to its root bundle must be refused")
	}
}
