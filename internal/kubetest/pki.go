package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is what the API server needs to serve TLS, authenticate its admin and
// sign service account tokens, written as files under dir.
type pki struct {
	caPEM         []byte // the cluster CA: signs the serving and client certificates
	caFile        string
	servingCert   string // kube-apiserver's serving certificate (127.0.0.1, localhost, kubernetes.default...)
	servingKey    string
	adminCertPEM  []byte // client certificate of the admin user (O=system:masters)
	adminKeyPEM   []byte
	saKeyFile     string // service account token signing key (RSA, as kubeadm's sa.key)
	saPubFile     string
	certsValidFor time.Duration
}

// caCert is a signing certificate and its key.
type caCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// adminUser and adminGroup name the identity of Cluster's kubeconfig: the
// group system:masters is bound to cluster-admin by the API server's RBAC
// bootstrap policy, as kubeadm's admin.conf is.
const (
	adminUser  = "kubetest-admin"
	adminGroup = "system:masters"
)

// newPKI makes a CA, a serving certificate, an admin client certificate and
// a service account key pair, and writes those the API server reads to dir.
func newPKI(dir string) (*pki, error) {
	p := &pki{certsValidFor: 24 * time.Hour}
	ca, caPEM, err := p.newCA("kubetest-ca")
	if err != nil {
		return nil, fmt.Errorf("kubetest: cluster CA: %w", err)
	}
	p.caPEM = caPEM
	servingPEM, servingKeyPEM, err := p.issue(ca, x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("kubetest: serving certificate: %w", err)
	}
	p.adminCertPEM, p.adminKeyPEM, err = p.issue(ca, x509.Certificate{
		Subject:     pkix.Name{CommonName: adminUser, Organization: []string{adminGroup}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("kubetest: admin client certificate: %w", err)
	}
	saKeyPEM, saPubPEM, err := newServiceAccountKey()
	if err != nil {
		return nil, fmt.Errorf("kubetest: service account key: %w", err)
	}
	p.caFile = filepath.Join(dir, "ca.crt")
	p.servingCert = filepath.Join(dir, "apiserver.crt")
	p.servingKey = filepath.Join(dir, "apiserver.key")
	p.saKeyFile = filepath.Join(dir, "sa.key")
	p.saPubFile = filepath.Join(dir, "sa.pub")
	for path, data := range map[string][]byte{
		p.caFile: caPEM, p.servingCert: servingPEM, p.servingKey: servingKeyPEM,
		p.saKeyFile: saKeyPEM, p.saPubFile: saPubPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
	}
	return p, nil
}

// newCA makes a self-signed CA.
func (p *pki) newCA(name string) (*caCert, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(p.certsValidFor),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return &caCert{cert: cert, key: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// issue signs a leaf certificate from tmpl's subject, names and usages.
func (p *pki) issue(ca *caCert, tmpl x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(p.certsValidFor)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// newServiceAccountKey makes the RSA key pair that signs service account
// tokens (RS256, what kubeadm generates as sa.key/sa.pub).
func newServiceAccountKey() (keyPEM, pubPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

// serial is a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
