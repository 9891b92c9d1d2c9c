// Package identity is a proxy's workload identity, as istio-agent keeps
// it for Envoy: a private key made here and never sent, a certificate for
// spiffe://<trust domain>/ns/<ns>/sa/<sa> signed by the control plane's CA
// from a CSR, renewed at half its lifetime with jitter (istio-agent's
// SecretManager), and the trust bundle to verify peers with. TLS configs
// read it through callbacks, so a renewal applies to new handshakes at
// once while established connections keep the certificates they were
// made with (TLS does not look at certificates after the handshake).
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

// istio-agent's rotation defaults (pilot/cmd/pilot-agent/options/options.go:
// SECRET_GRACE_PERIOD_RATIO 0.5, SECRET_GRACE_PERIOD_RATIO_JITTER 0.01).
const (
	DefaultGraceRatio       = 0.5
	DefaultGraceRatioJitter = 0.01
)

// Options configure a workload identity.
type Options struct {
	// CAAddress is the control plane's gRPC address (the xDS address).
	CAAddress string
	// ControlPlane says how to dial it (token, TLS); its Address is
	// CAAddress when empty.
	ControlPlane   ControlPlane
	TrustDomain    string
	Namespace      string
	ServiceAccount string
	// TTL is the certificate lifetime asked for (istio-agent's SECRET_TTL;
	// 0: the CA's default).
	TTL time.Duration
	// GraceRatio and GraceRatioJitter place the renewal (see rotateTime);
	// 0: Istio's defaults. A negative jitter means none.
	GraceRatio, GraceRatioJitter float64
	// Impersonate asks for the identity on another's behalf: the request
	// carries metadata ImpersonatedIdentity = the SPIFFE ID, as ztunnel's
	// CA client (src/identity/caclient.rs), for a node proxy whose token
	// is its own service account's (the CA's node authorization).
	Impersonate bool
	Logger      *slog.Logger
}

// Workload holds the current certificate and roots.
type Workload struct {
	opts  Options
	id    *url.URL
	key   *ecdsa.PrivateKey
	cert  atomic.Pointer[tls.Certificate]
	roots atomic.Pointer[x509.CertPool]
	// rootsPEM is the trust bundle in force, for /certs.
	rootsPEM atomic.Pointer[[]byte]
	// issuer is the hex SHA-256 of the certificate that signed cert.
	issuer atomic.Pointer[string]
	ready  chan struct{}
	// renewNow asks Run for a certificate at once (the signer changed).
	renewNow chan struct{}
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
	if opts.ControlPlane.Address == "" {
		opts.ControlPlane.Address = opts.CAAddress
	}
	if opts.GraceRatio == 0 {
		opts.GraceRatio = DefaultGraceRatio
	}
	if opts.GraceRatioJitter == 0 {
		opts.GraceRatioJitter = DefaultGraceRatioJitter
	}
	id, err := url.Parse(ca.Identity(opts.TrustDomain, opts.Namespace, opts.ServiceAccount))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: key: %w", err)
	}
	return &Workload{opts: opts, id: id, key: key, ready: make(chan struct{}), renewNow: make(chan struct{}, 1)}, nil
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

// Run obtains the certificate and renews it until ctx ends, retrying
// failures with backoff; it also follows the control plane's trust
// bundle watch, so a root rotation is trusted at once and the
// certificate renewed from the new signer.
func (w *Workload) Run(ctx context.Context) {
	dial, err := w.opts.ControlPlane.DialOptions()
	if err == nil {
		var conn *grpc.ClientConn
		if conn, err = grpc.NewClient(w.opts.ControlPlane.Address, dial...); err == nil {
			defer conn.Close()
			go w.followBundle(ctx, conn)
			w.renewLoop(ctx, securityv1alpha1.NewIstioCertificateServiceClient(conn))
			return
		}
	}
	w.opts.Logger.Error("identity: cannot reach the CA", "address", w.opts.ControlPlane.Address, "err", err)
}

func (w *Workload) renewLoop(ctx context.Context, client securityv1alpha1.IstioCertificateServiceClient) {
	backoff := 200 * time.Millisecond
	for {
		next, err := w.renew(ctx, client)
		if err != nil {
			w.logFailure(err, backoff)
			next, backoff = backoff, min(backoff*2, 30*time.Second)
		} else {
			backoff = 200 * time.Millisecond
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-w.renewNow:
			timer.Stop()
		}
	}
}

// logFailure reports a failed certificate request: a refusal (token,
// identity, TTL) as an error that names its fix, a transport failure as
// a warning with a hint when TLS may be the cause.
func (w *Workload) logFailure(err error, retry time.Duration) {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		w.opts.Logger.Error("identity: the CA refused the certificate request; retrying", "id", w.ID(), "err", err, "in", retry)
	case codes.Unavailable:
		hint := "is the control plane running at this address?"
		if !w.opts.ControlPlane.TLS {
			hint += " if it serves TLS (--xds-tls, on by default for a non-loopback address), start the proxy with --xds-tls"
		}
		w.opts.Logger.Warn("identity: CA unreachable; retrying", "id", w.ID(), "err", err, "in", retry, "hint", hint)
	default:
		w.opts.Logger.Warn("identity: certificate request failed; retrying", "id", w.ID(), "err", err, "in", retry)
	}
}

// rotateTime is when to renew a certificate, as istio-agent's
// SecretManagerClient (security/pkg/nodeagent/cache/secretcache.go
// rotateTime): the grace period is graceRatio of its life, moved up or
// down by a random part of graceRatioJitter, so a fleet started together
// does not renew together.
func rotateTime(created, expire time.Time, graceRatio, graceRatioJitter float64) time.Duration {
	jitter := (mrand.Float64() * max(graceRatioJitter, 0)) * float64(mrand.IntN(2)*2-1)
	ratio := min(max(graceRatio+jitter, 0), 1)
	grace := time.Duration(ratio * float64(expire.Sub(created)))
	return max(time.Until(expire.Add(-grace)), 0)
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
	req := &securityv1alpha1.IstioCertificateRequest{Csr: string(csr), ValidityDuration: int64(w.opts.TTL.Seconds())}
	if w.opts.Impersonate {
		req.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{
			ca.ImpersonatedIdentity: structpb.NewStringValue(w.ID()),
		}}
	}
	resp, err := client.CreateCertificate(rctx, req)
	if err != nil {
		return 0, err
	}
	cert, roots, rootsPEM, err := w.parseResponse(resp.GetCertChain())
	if err != nil {
		return 0, err
	}
	issuer := issuerFingerprint(cert, rootsPEM)
	w.setRoots(roots, rootsPEM)
	w.issuer.Store(&issuer)
	w.cert.Store(cert)
	leaf := cert.Leaf
	// Istio measures the life from when the certificate was made
	// (SecretItem.CreatedTime), not from NotBefore, which the CA backdates.
	next := rotateTime(time.Now(), leaf.NotAfter, w.opts.GraceRatio, w.opts.GraceRatioJitter)
	select {
	case <-w.ready:
		w.opts.Logger.Info("identity: certificate renewed", "id", w.ID(), "serial", leaf.SerialNumber.Text(16),
			"expires", leaf.NotAfter.Format(time.RFC3339), "next_renewal", next.Round(time.Second))
	default:
		close(w.ready)
		w.opts.Logger.Info("identity: certificate issued", "id", w.ID(), "serial", leaf.SerialNumber.Text(16),
			"expires", leaf.NotAfter.Format(time.RFC3339), "next_renewal", next.Round(time.Second))
	}
	return next, nil
}

// parseResponse reads istiod's response chain: the leaf, any
// intermediates, and last the trust bundle (one element holding every
// active root).
func (w *Workload) parseResponse(chain []string) (*tls.Certificate, *x509.CertPool, []byte, error) {
	if len(chain) < 2 {
		return nil, nil, nil, fmt.Errorf("CA answered %d certificates, want leaf and root", len(chain))
	}
	cert := &tls.Certificate{PrivateKey: w.key}
	for _, p := range chain[:len(chain)-1] {
		rest := []byte(p)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, nil, nil, errors.New("CA answered a certificate that is not PEM")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, nil, err
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&w.key.PublicKey) {
		return nil, nil, nil, errors.New("CA answered a certificate for another key")
	}
	cert.Leaf = leaf
	rootsPEM := []byte(chain[len(chain)-1])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		return nil, nil, nil, errors.New("CA answered a trust bundle that is not PEM")
	}
	return cert, roots, rootsPEM, nil
}

func (w *Workload) setRoots(roots *x509.CertPool, rootsPEM []byte) {
	w.roots.Store(roots)
	w.rootsPEM.Store(&rootsPEM)
}

// followBundle keeps the trust bundle watch open: a new bundle is
// trusted on receipt, and a signer other than the certificate's issuer
// triggers a renewal after a short random delay (so every proxy has the
// new bundle before new certificates are presented to it).
func (w *Workload) followBundle(ctx context.Context, conn grpc.ClientConnInterface) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := ca.WatchBundle(ctx, conn, func(u ca.BundleUpdate) { w.applyBundle(ctx, u) })
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = 500 * time.Millisecond
		}
		w.opts.Logger.Debug("identity: trust bundle watch ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// bundleRenewDelay bounds the random delay before renewing for a new
// signer.
const bundleRenewDelay = 3 * time.Second

func (w *Workload) applyBundle(ctx context.Context, u ca.BundleUpdate) {
	if w.cert.Load() == nil {
		return // the first certificate's response brings the bundle
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(u.TrustBundle) {
		w.opts.Logger.Warn("identity: control plane sent a trust bundle that is not PEM; ignored")
		return
	}
	if old := w.rootsPEM.Load(); old == nil || string(*old) != string(u.TrustBundle) {
		w.setRoots(roots, u.TrustBundle)
		w.opts.Logger.Info("identity: trust bundle updated", "roots", countPEM(u.TrustBundle), "version", u.Version)
	}
	if issuer := w.issuer.Load(); issuer == nil || *issuer == u.SignerSHA256 {
		return
	}
	delay := bundleRenewDelay/3 + time.Duration(mrand.Int64N(int64(bundleRenewDelay*2/3)))
	w.opts.Logger.Info("identity: the CA signs with a new certificate; renewing", "in", delay.Round(time.Millisecond))
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(delay):
			select {
			case w.renewNow <- struct{}{}:
			default:
			}
		}
	}()
}

// issuerFingerprint is the hex SHA-256 of the certificate that signed the
// leaf: the next one in the chain or, when the chain is the leaf alone
// (a self-signed root signs), the root of the bundle whose key did.
func issuerFingerprint(cert *tls.Certificate, rootsPEM []byte) string {
	if len(cert.Certificate) > 1 {
		sum := sha256.Sum256(cert.Certificate[1])
		return hex.EncodeToString(sum[:])
	}
	for rest := rootsPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return ""
		}
		root, err := x509.ParseCertificate(b.Bytes)
		if err == nil && cert.Leaf.CheckSignatureFrom(root) == nil {
			sum := sha256.Sum256(b.Bytes)
			return hex.EncodeToString(sum[:])
		}
	}
}

func countPEM(b []byte) int {
	n := 0
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return n
		}
		n++
	}
}
