package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"
)

func csrFor(t *testing.T, uris ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var us []*url.URL
	for _, s := range uris {
		u, _ := url.Parse(s)
		us = append(us, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: us}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignWorkloadCertificate(t *testing.T) {
	c, err := New(Options{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	id := Identity("example.org", "shop", "cart")
	chain, err := c.Sign(csrFor(t, id), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[1] != string(c.RootPEM()) {
		t.Fatalf("chain must be leaf then root, got %d entries", len(chain))
	}
	b, _ := pem.Decode([]byte(chain[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(c.RootPEM())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the root: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Errorf("leaf identity %v, want %s", leaf.URIs, id)
	}
	if ttl := time.Until(leaf.NotAfter); ttl > time.Hour || ttl < 50*time.Minute {
		t.Errorf("lifetime %v, asked for 1h", ttl)
	}
}

func TestSignRefusesOtherIdentities(t *testing.T) {
	c, err := New(Options{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for name, csr := range map[string][]byte{
		"other trust domain": csrFor(t, "spiffe://evil.org/ns/a/sa/b"),
		"not ns/sa":          csrFor(t, "spiffe://example.org/workload/x"),
		"two identities":     csrFor(t, "spiffe://example.org/ns/a/sa/b", "spiffe://example.org/ns/a/sa/c"),
		"no identity":        csrFor(t),
		"not PEM":            []byte("hello"),
	} {
		if _, err := c.Sign(csr, 0); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestRootPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.RootPEM()) != string(b.RootPEM()) {
		t.Error("a CA with a folder must load the root it saved")
	}
	if !strings.Contains(string(a.RootPEM()), "BEGIN CERTIFICATE") {
		t.Error("root is not PEM")
	}
}
