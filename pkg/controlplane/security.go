package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"k8s.io/client-go/kubernetes"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// SecurityOptions configure the CA and who may use the xDS/CA port.
type SecurityOptions struct {
	// WorkloadCertTTL is the lifetime of a certificate whose request asks
	// for none (istiod's DEFAULT_WORKLOAD_CERT_TTL; 0: 24h).
	WorkloadCertTTL time.Duration
	// MaxWorkloadCertTTL is the longest lifetime a proxy may ask for
	// (istiod's MAX_WORKLOAD_CERT_TTL; 0: 90 days).
	MaxWorkloadCertTTL time.Duration
	// StateDir receives what proxies need to connect: the bootstrap token
	// and the bound tokens' signing key (0600), and root-cert.pem, the
	// trust bundle to verify the xDS port's TLS certificate with. Empty:
	// tokens in memory only (no proxy can connect; for tests).
	StateDir string
	// BootstrapTokenFile overrides <StateDir>/bootstrap-token.
	BootstrapTokenFile string
	// XDSTLS serves the xDS/CA port over TLS with a certificate from the
	// mesh CA (SAN istiod.istio-system.svc and the listen host).
	XDSTLS bool
	// TrustedNodeAccounts are the service accounts (namespace/name) whose
	// pods' tokens may get the identities of the pods on their node, as
	// istiod's CA_TRUSTED_NODE_ACCOUNTS (ztunnel's; with a cluster only).
	TrustedNodeAccounts []string
}

// security is the control plane's CA, token checks and the trust bundle
// watch, wired into the gRPC server.
type security struct {
	opts     SecurityOptions
	caDir    string
	log      *slog.Logger
	ca       *ca.CA
	auth     *ca.Authenticator
	bundle   *ca.BundleService
	rootFile string
	// metrics count certificate requests (citadel_server_*).
	metrics *ca.Metrics
	// nodes authorizes node proxies' impersonation (nil: none).
	nodes *ca.NodeAuthorizer
}

func newSecurity(opts Options) (*security, error) {
	so := opts.Security
	if so.WorkloadCertTTL == 0 {
		ttl, err := meshSecretTTL(opts.Mesh)
		if err != nil {
			return nil, err
		}
		so.WorkloadCertTTL = ttl
	}
	caOpts := ca.Options{TrustDomain: opts.Mesh.GetTrustDomain(), Dir: opts.CADir,
		WorkloadTTL: so.WorkloadCertTTL, MaxWorkloadTTL: so.MaxWorkloadCertTTL}
	var kube kubernetes.Interface
	if opts.Kube != nil {
		var err error
		if kube, err = kubernetes.NewForConfig(opts.Kube); err != nil {
			return nil, fmt.Errorf("control: kubernetes client: %w", err)
		}
		if opts.CADir == "" {
			// On Kubernetes the CA lives in Secrets, as istiod's.
			caOpts.Kube = &ca.KubeStore{Client: kube, Namespace: opts.controlNamespace()}
		}
	}
	authority, err := ca.New(caOpts)
	if err != nil {
		if caOpts.Kube != nil {
			return nil, fmt.Errorf("%w (the CA is kept in Secrets of namespace %s: create it, or give --ca-dir)", err, caOpts.Kube.Namespace)
		}
		return nil, err
	}
	tokOpts := ca.TokenOptions{BootstrapFile: so.BootstrapTokenFile}
	if so.StateDir != "" {
		if tokOpts.BootstrapFile == "" {
			tokOpts.BootstrapFile = filepath.Join(so.StateDir, ca.FileBootstrapToken)
		}
		tokOpts.KeyFile = filepath.Join(so.StateDir, ca.FileTokenKey)
	}
	tokens, err := ca.LoadOrCreateTokens(tokOpts)
	if err != nil {
		return nil, err
	}
	auth := &ca.Authenticator{Tokens: tokens}
	var nodes *ca.NodeAuthorizer
	if kube != nil {
		// Pods' projected service account tokens, checked by TokenReview.
		auth.Kube = &ca.KubeTokens{Client: kube}
		trusted, err := ca.ParseTrustedNodeAccounts(so.TrustedNodeAccounts)
		if err != nil {
			return nil, fmt.Errorf("control: --trusted-node-accounts: %w", err)
		}
		if len(trusted) > 0 {
			nodes = &ca.NodeAuthorizer{Client: kube, Trusted: trusted}
		}
	}
	opts.Logger.Info("proxies prove their identity with a token", "bootstrap_token_file", tokOpts.BootstrapFile,
		"xds_tls", so.XDSTLS, "workload_cert_ttl", authority.WorkloadTTL(), "max_workload_cert_ttl", authority.MaxTTL())
	s := &security{opts: so, caDir: opts.CADir, log: opts.Logger, ca: authority, auth: auth, nodes: nodes,
		bundle: &ca.BundleService{CA: authority, Auth: auth}}
	if so.StateDir != "" {
		s.rootFile = filepath.Join(so.StateDir, ca.FileRootCert)
		if err := s.writeRootFile(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// meshSecretTTL is MeshConfig's defaultConfig.proxyMetadata.SECRET_TTL,
// the lifetime Istio's agents ask for mesh-wide; sluice's proxies ask for
// none unless --cert-ttl says so, so the CA gives it as its default (0:
// not set).
func meshSecretTTL(mesh *meshv1alpha1.MeshConfig) (time.Duration, error) {
	v, ok := mesh.GetDefaultConfig().GetProxyMetadata()["SECRET_TTL"]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("mesh config: defaultConfig.proxyMetadata.SECRET_TTL %q is not a positive duration", v)
	}
	return d, nil
}

// serverOptions are the gRPC server's credentials and token checks; the
// serving certificate names the listen host and the extra hosts (the
// name injected pods dial, istiod-<rev>.<namespace>.svc for a revision).
func (s *security) serverOptions(xdsAddress string, extra ...string) []grpc.ServerOption {
	out := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(s.auth.StreamInterceptor(checkNode)),
	}
	if s.opts.XDSTLS {
		hosts := ca.ServingHosts(xdsAddress)
		for _, h := range extra {
			if h != "" && !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		sc := &ca.ServingCert{CA: s.ca, Hosts: hosts}
		out = append(out, grpc.Creds(credentials.NewTLS(&tls.Config{
			GetCertificate: sc.GetCertificate, MinVersion: tls.VersionTLS12})))
	}
	return out
}

func (s *security) register(g *grpc.Server) {
	(&ca.Server{CA: s.ca, Auth: s.auth, Metrics: s.metrics, Nodes: s.nodes, Logger: s.log}).Register(g)
	s.bundle.Register(g)
}

// checkNode refuses an xDS stream whose node announces an identity the
// caller's token does not permit: a proxy gets the config of the
// workload it may be, as the certificate it may hold.
func checkNode(c ca.Caller, msg any) error {
	req, ok := msg.(interface{ GetNode() *core.Node })
	if !ok || req.GetNode() == nil || c.Any {
		return nil
	}
	p, err := model.ProxyFromNode(req.GetNode())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if !c.Permits(p.Namespace, p.ServiceAccount) {
		return status.Errorf(codes.PermissionDenied, "proxy %s announces service account %s/%s, which %s does not permit; "+
			"start it with --namespace/--service-account matching its token, or mint one with `sluice control token --namespace %s --service-account %s`",
			p.ID, p.Namespace, p.ServiceAccount, c, p.Namespace, p.ServiceAccount)
	}
	return nil
}

// writeRootFile writes the trust bundle where proxies read it to verify
// the xDS port (unless the CA folder is that folder and holds it).
func (s *security) writeRootFile() error {
	if s.rootFile == "" || (s.caDir != "" && filepath.Clean(s.caDir) == filepath.Dir(s.rootFile)) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.rootFile), 0o700); err != nil {
		return err
	}
	tmp := s.rootFile + ".tmp"
	if err := os.WriteFile(tmp, s.ca.RootPEM(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.rootFile)
}

// reload re-reads the CA folder; a change is written to the root file
// and pushed to every proxy's trust bundle watch.
func (s *security) reload(reason string) {
	changed, err := s.ca.Reload()
	if err != nil {
		s.log.Error("CA folder not loaded; the CA keeps its key material", "reason", reason, "err", err)
		return
	}
	if !changed {
		return
	}
	if err := s.writeRootFile(); err != nil {
		s.log.Error("cannot write the trust bundle file", "file", s.rootFile, "err", err)
	}
	s.bundle.Publish()
	s.log.Info("CA key material changed; trust bundle pushed to proxies", "reason", reason, "version", s.ca.Version())
}

// watch reloads the CA folder when a file in it changes or on SIGHUP.
func (s *security) watch(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events <-chan fsnotify.Event
	if s.caDir != "" {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("control: watch CA folder: %w", err)
		}
		defer w.Close()
		if err := w.Add(s.caDir); err != nil {
			return fmt.Errorf("control: watch CA folder: %w", err)
		}
		events = w.Events
		// A change made between loading the folder and watching it.
		s.reload("CA folder changed before it was watched")
	}
	// A rotation writes two files; settle before reading.
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			s.reload("SIGHUP")
		case <-events:
			settle = time.After(200 * time.Millisecond)
		case <-settle:
			settle = nil
			s.reload("CA folder changed")
		}
	}
}
