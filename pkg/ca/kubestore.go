package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// On Kubernetes the CA's key material lives in Secrets of the control
// plane's namespace, as istiod keeps it (security/pkg/pki/ca/ca.go,
// NewSelfSignedIstioCAOptions and NewPluggedCertIstioCAOptions):
//
//   - `cacerts`, the plug-in CA (istio.io "Plug in CA Certificates"):
//     ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem, read as the
//     plug-in layout of the CA folder (store.go);
//   - else `istio-ca-secret` (type istio.io/ca-root), the self-signed
//     root: ca-cert.pem and ca-key.pem are the root and its key
//     (root-cert.pem, when not empty, adds roots to the trust bundle);
//     made, and created, when neither Secret exists. When two control
//     planes start together, the one whose create loses reads the
//     other's.
const (
	SecretPluginCA   = "cacerts"
	SecretSelfSigned = "istio-ca-secret"
	// secretTypeCARoot is the type istiod gives istio-ca-secret.
	secretTypeCARoot = "istio.io/ca-root"
	kubeStoreTimeout = 30 * time.Second
)

// KubeStore keeps the CA in Secrets of Namespace.
type KubeStore struct {
	Client    kubernetes.Interface
	Namespace string
}

// load reads the CA from the Secrets, making and storing a self-signed
// root when there is none.
func (s *KubeStore) load(trustDomain string) (*keyCertBundle, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubeStoreTimeout)
	defer cancel()
	b, err := s.read(ctx)
	if err == nil || !apierrors.IsNotFound(err) {
		return b, err
	}
	if b, err = newSelfSigned(trustDomain); err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(b.key)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretSelfSigned, Namespace: s.Namespace},
		Type:       secretTypeCARoot,
		Data: map[string][]byte{
			FileCACert: b.rootsPEM, FileCAKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
			FileCertChain: {}, FileRootCert: {},
		},
	}
	_, err = s.Client.CoreV1().Secrets(s.Namespace).Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return s.read(ctx) // another control plane made it first
	}
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s: %w", s.Namespace, SecretSelfSigned, err)
	}
	return b, nil
}

// read loads cacerts, else istio-ca-secret; a NotFound error when
// neither exists.
func (s *KubeStore) read(ctx context.Context) (*keyCertBundle, error) {
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	plug, err := secrets.Get(ctx, SecretPluginCA, metav1.GetOptions{})
	if err == nil {
		b, err := loadPlugin(secretFiles(plug.Data))
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, SecretPluginCA, err)
		}
		return b, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, SecretPluginCA, err)
	}
	self, err := secrets.Get(ctx, SecretSelfSigned, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, SecretSelfSigned, err)
	}
	// istiod's names for a self-signed root, seen as the folder's layout.
	roots := append(append([]byte{}, self.Data[FileCACert]...), self.Data[FileRootCert]...)
	b, err := loadSelfSigned(secretFiles(map[string][]byte{FileRootCert: roots, FileRootKey: self.Data[FileCAKey]}))
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, SecretSelfSigned, err)
	}
	return b, nil
}

// secretFiles reads a Secret's data as the CA's files; an absent key is
// fs.ErrNotExist, as a missing file is.
func secretFiles(data map[string][]byte) caFiles {
	return func(name string) ([]byte, error) {
		b, ok := data[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return b, nil
	}
}
