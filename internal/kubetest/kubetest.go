// Package kubetest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver built from their modules (hack/build-etcd.sh,
// hack/build-kube-apiserver.sh; cached by version), on loopback with free ports, serving TLS,
// authenticating an admin by client certificate, authorizing with RBAC,
// running the default admission plugins (so mutating and validating
// webhooks on 127.0.0.1 are called), signing service account tokens
// (TokenRequest, TokenReview) and serving CRDs.
//
// There is no kube-controller-manager, scheduler or kubelet: objects are
// stored and admitted as in a cluster, but nothing reconciles them. So a
// namespace has no "default" ServiceAccount unless the test makes one
// (Cluster.CreateNamespace does) nor kube-root-ca.crt ConfigMap, deleted
// namespaces stay Terminating, nothing is garbage-collected, Services get
// no EndpointSlices (tests write them) and Pods are never scheduled.
package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure a cluster. The zero value is a usable default.
type Options struct {
	// Version is the Kubernetes release of kube-apiserver (default
	// DefaultVersion).
	Version string
	// EtcdVersion is the etcd release (default DefaultEtcdVersion).
	EtcdVersion string
	// APIServerArgs are extra kube-apiserver flags, appended after the
	// defaults (a later flag wins), e.g. "--feature-gates=...".
	APIServerArgs []string
	// StartTimeout bounds the wait for etcd and for /readyz (default 2m).
	StartTimeout time.Duration
}

// ServiceAccountIssuer is the issuer of the cluster's service account
// tokens, as kubeadm sets it.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig file for the admin user
	// (client certificate in group system:masters).
	Kubeconfig string
	// Host is the API server's URL, https://127.0.0.1:PORT.
	Host string
	// CACertPEM is the CA that signed the API server's serving certificate
	// and the admin's client certificate.
	CACertPEM []byte
	// EtcdURL is etcd's client URL (plain HTTP on loopback).
	EtcdURL string
	// Dir holds the certificates, keys, etcd's data and the logs.
	Dir string
	// StartTime is how long kube-apiserver took from start to /readyz.
	StartTime time.Duration

	pki       *pki
	etcd      *process
	apiserver *process

	// How kube-apiserver was started, for RestartAPIServer.
	apiBin       string
	apiArgs      []string
	startTimeout time.Duration
	restarts     int
}

// Start runs etcd and kube-apiserver for the test, waits until the API
// server's /readyz answers 200, and stops both when the test ends; when
// the test has failed it prints the end of both logs, which stay in Dir.
// A missing binary skips the test, or fails it under CI=true.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.EtcdVersion == "" {
		opts.EtcdVersion = DefaultEtcdVersion
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	etcdBin := binary(t, etcdSpec(opts.EtcdVersion))
	apiBin := binary(t, apiServerSpec(opts.Version))
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	c := &Cluster{Dir: dir}
	t.Cleanup(func() { c.stop(t) })
	if c.pki, err = newPKI(dir); err != nil {
		t.Fatal(err)
	}
	c.CACertPEM = c.pki.caPEM
	if err := c.startEtcd(etcdBin, opts.StartTimeout); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := c.startAPIServer(apiBin, opts); err != nil {
		t.Fatal(err)
	}
	c.StartTime = time.Since(begin)
	t.Logf("kubetest: kube-apiserver %s ready at %s in %v (etcd %s)", opts.Version, c.Host, c.StartTime.Round(time.Millisecond), c.EtcdURL)
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(c.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	return c
}

// stop ends kube-apiserver, then etcd. The folder is removed when the test
// passed and kept, with its logs, when it failed.
func (c *Cluster) stop(t testing.TB) {
	for _, p := range []*process{c.apiserver, c.etcd} {
		if p != nil {
			p.Stop()
		}
	}
	if t.Failed() {
		for _, p := range []*process{c.etcd, c.apiserver} {
			if p != nil {
				t.Logf("---- last 40 lines of %s (%s) ----\n%s", p.name, p.logPath, p.tail(40))
			}
		}
		t.Logf("kubetest: cluster files and logs kept in %s", c.Dir)
		return
	}
	os.RemoveAll(c.Dir)
}

// RESTConfig is a client-go configuration for the admin user. Each call
// returns a new copy, free to change.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: c.Host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.caPEM,
			CertData: c.pki.adminCertPEM,
			KeyData:  c.pki.adminKeyPEM,
		},
		// Tests create objects in bursts; client-go's default of 5 QPS
		// would throttle them.
		QPS:   200,
		Burst: 400,
	}
}

// Client is a typed clientset for the admin user.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatalf("kubetest: clientset: %v", err)
	}
	return cs
}

// Logs returns the paths of etcd's and kube-apiserver's logs.
func (c *Cluster) Logs() (etcd, apiserver string) {
	return c.etcd.logPath, c.apiserver.logPath
}

// errExited reports a server that ended during start-up.
func errExited(p *process, err error) error {
	return fmt.Errorf("kubetest: %s exited during start-up (%v); last lines of %s:\n%s", p.name, err, p.logPath, p.tail(30))
}
