package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/internal/kubetest"
)

// On Kubernetes the CA is kept in Secrets: with none, a self-signed root
// is made and stored in istio-ca-secret, and a second control plane uses
// the same root; a plug-in CA in cacerts is used instead once it exists
// (Reload), and signs through its chain.
func TestCAInKubernetesSecrets(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.CreateNamespace(t, "istio-system", nil)
	client := c.Client(t)
	store := &KubeStore{Client: client, Namespace: "istio-system"}

	first, err := New(Options{Kube: store})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := client.CoreV1().Secrets("istio-system").Get(context.Background(), SecretSelfSigned, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("istio-ca-secret not created: %v", err)
	}
	if sec.Type != secretTypeCARoot || len(sec.Data[FileCACert]) == 0 || len(sec.Data[FileCAKey]) == 0 {
		t.Fatalf("istio-ca-secret: type %q, keys %v", sec.Type, keys(sec.Data))
	}
	second, err := New(Options{Kube: store})
	if err != nil {
		t.Fatal(err)
	}
	if first.SignerFingerprint() != second.SignerFingerprint() {
		t.Fatal("a second control plane made its own root instead of reading istio-ca-secret")
	}
	if _, err := New(Options{Kube: store, Dir: t.TempDir()}); err == nil {
		t.Fatal("a CA in both a folder and Secrets was accepted")
	}

	// A plug-in CA: an intermediate of another root, in cacerts.
	root, err := newSelfSigned("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "plug-in intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.signer, &key.PublicKey, root.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	plug := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretPluginCA, Namespace: "istio-system"}, Data: map[string][]byte{
		FileCACert: certPEM, FileCAKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
		FileCertChain: certPEM, FileRootCert: root.rootsPEM,
	}}
	if _, err := client.CoreV1().Secrets("istio-system").Create(context.Background(), plug, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changed, err := first.Reload()
	if err != nil || !changed {
		t.Fatalf("reload after cacerts appeared: changed %v, %v", changed, err)
	}
	chain, err := first.Sign(csrFor(t, Identity("cluster.local", "a", "b")), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyAt(t, root.rootsPEM, chain); err != nil {
		t.Fatalf("leaf does not verify through the plug-in chain: %v", err)
	}

	// A broken cacerts is an error; the CA keeps what it had.
	plug.Data[FileRootCert] = first.RootPEM()[:20]
	if _, err := client.CoreV1().Secrets("istio-system").Update(context.Background(), plug, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Reload(); err == nil {
		t.Fatal("a broken cacerts was loaded")
	}
	if _, err := first.Sign(csrFor(t, Identity("cluster.local", "a", "b")), time.Hour); err != nil {
		t.Fatalf("the CA lost its last good key material: %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
