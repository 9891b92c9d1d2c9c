// Package identity is a proxy's workload identity, as istio-agent keeps
// it for Envoy: a private key made here and never sent, a certificate for
// spiffe://<trust domain>/ns/<ns>/sa/<sa> signed by the control plane's CA
// from a CSR, renewed at half its lifetime, and the mesh root to verify
// peers with. TLS configs read it through callbacks, so renewals apply to
// new connections at once.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// Options configure a workload identity.
type Options struct {
	// CAAddress is the control plane's gRPC address (the xDS address).
	CAAddress      string
	TrustDomain    string
	Namespace      string
	ServiceAccount string
	// TTL is the certificate lifetime asked for (0: the CA's default).
	TTL    time.Duration
	Logger *slog.Logger
}

// Workload holds the current certificate and roots.
type Workload struct {
	opts  Options
	id    *url.URL
	key   *ecdsa.PrivateKey
	cert  atomic.Pointer[tls.Certificate]
	roots atomic.Pointer[x509.CertPool]
	ready chan struct{}
}

// ErrNotReady is returned while no certificate has been issued yet.
var ErrNotReady = errors.New("workload certificate not issued yet")

// New makes the workload's key; Run obtains and renews its certificate.
func New(opts Options) (*Workload, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = meshconfig.DefaultTrustDomain
	}
	if opts.ServiceAccount == "" {
		opts.ServiceAccount = "default"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	id, err := url.Parse(ca.Identity(opts.TrustDomain, opts.Namespace, opts.ServiceAccount))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: key: %w", err)
	}
	return &Workload{opts: opts, id: id, key: key, ready: make(chan struct{})}, nil
}

// ID is the workload's SPIFFE ID.
func (w *Workload) ID() string { return w.id.String() }

// Ready is closed once a certificate is in hand.
func (w *Workload) Ready() <-chan struct{} { return w.ready }

// Certificate is the current certificate (for tls.Config callbacks).
func (w *Workload) Certificate() (*tls.Certificate, error) {
	if c := w.cert.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNotReady
}

// Roots are the mesh roots to verify peers with (nil before the first
// certificate).
func (w *Workload) Roots() *x509.CertPool { return w.roots.Load() }

// Run obtains the certificate and renews it at half its lifetime until ctx
// ends, retrying failures with backoff.
func (w *Workload) Run(ctx context.Context) {
	conn, err := grpc.NewClient(w.opts.CAAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		w.opts.Logger.Error("identity: cannot reach the CA", "address", w.opts.CAAddress, "err", err)
		return
	}
	defer conn.Close()
	client := securityv1alpha1.NewIstioCertificateServiceClient(conn)
	backoff := 200 * time.Millisecond
	for {
		next, err := w.renew(ctx, client)
		if err != nil {
			w.opts.Logger.Warn("identity: certificate request failed; retrying", "id", w.ID(), "err", err, "in", backoff)
			next, backoff = backoff, min(backoff*2, 30*time.Second)
		} else {
			backoff = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// renew asks for a certificate and returns when to renew it.
func (w *Workload) renew(ctx context.Context, client securityv1alpha1.IstioCertificateServiceClient) (time.Duration, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{w.id}}, w.key)
	if err != nil {
		return 0, err
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := client.CreateCertificate(rctx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(csr), ValidityDuration: int64(w.opts.TTL.Seconds()),
	})
	if err != nil {
		return 0, err
	}
	chain := resp.GetCertChain()
	if len(chain) < 2 {
		return 0, fmt.Errorf("CA answered %d certificates, want leaf and root", len(chain))
	}
	cert := &tls.Certificate{PrivateKey: w.key}
	for _, p := range chain[:len(chain)-1] {
		b, _ := pem.Decode([]byte(p))
		if b == nil {
			return 0, errors.New("CA answered a certificate that is not PEM")
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return 0, err
	}
	cert.Leaf = leaf
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(chain[len(chain)-1])) {
		return 0, errors.New("CA answered a root that is not PEM")
	}
	w.roots.Store(roots)
	w.cert.Store(cert)
	select {
	case <-w.ready:
	default:
		close(w.ready)
		w.opts.Logger.Info("identity: certificate issued", "id", w.ID(), "expires", leaf.NotAfter.Format(time.RFC3339))
	}
	return time.Until(leaf.NotAfter) / 2, nil
}

// VerifyPeer checks a peer's chain against the mesh roots and, when ids is
// not empty, that its SPIFFE ID is one of them (Envoy's SAN match).
func (w *Workload) VerifyPeer(rawCerts [][]byte, ids []string) error {
	roots := w.Roots()
	if roots == nil {
		return ErrNotReady
	}
	if len(rawCerts) == 0 {
		return errors.New("peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("peer certificate is not from the mesh CA: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	for _, u := range certs[0].URIs {
		for _, id := range ids {
			if u.String() == id {
				return nil
			}
		}
	}
	return fmt.Errorf("peer identity %v is none of %v", certs[0].URIs, ids)
}
