package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// portTries is how often a server is restarted on new ports when one was
// taken between testenv.FreePort and its bind.
const portTries = 3

// errPortTaken makes startWithRetry pick new ports.
var errPortTaken = errors.New("port taken")

// startWithRetry runs start until it succeeds or fails for a reason other
// than a taken port.
func startWithRetry(start func(try int) error) error {
	var err error
	for try := 0; try < portTries; try++ {
		if err = start(try); !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// startEtcd runs a one-member etcd on loopback ports, with its data in
// Dir/etcd, and waits for its /health.
func (c *Cluster) startEtcd(bin string, timeout time.Duration) error {
	return startWithRetry(func(try int) error {
		client, peer := testenv.FreePort(), testenv.FreePort()
		c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(client)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
		dataDir := filepath.Join(c.Dir, "etcd")
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("kubetest: etcd data dir: %w", err)
		}
		args := []string{
			"--name=kubetest",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + c.EtcdURL,
			"--advertise-client-urls=" + c.EtcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kubetest=" + peerURL,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-outputs=stderr",
			// Throw-away data: no fsync, so a busy 2-core machine does not
			// stall writes (the API server's behaviour is the same).
			"--unsafe-no-fsync",
		}
		p, err := startProcess("etcd", bin, logPath(c.Dir, "etcd", try), args)
		if err != nil {
			return err
		}
		c.etcd = p
		return waitHealthy(p, http.DefaultClient, c.EtcdURL+"/health", timeout)
	})
}

// apiServerArgs are kube-apiserver's flags: a single-member control plane
// as kubeadm configures one (TLS, client-certificate authentication, RBAC,
// service account token signing), with the default admission plugins.
func (c *Cluster) apiServerArgs(port int) []string {
	return []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file=" + c.pki.servingCert,
		"--tls-private-key-file=" + c.pki.servingKey,
		"--client-ca-file=" + c.pki.caFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=true", // as kubeadm: /readyz, /livez, /version for everyone (RBAC bootstrap roles)
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + c.pki.saPubFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
		// On SIGTERM, end open watches (clients reconnect) instead of
		// waiting for them to close: without it, a stop or
		// RestartAPIServer under a running informer hangs in the HTTP
		// server's shutdown until stopGrace kills it.
		"--shutdown-watch-termination-grace-period=2s",
		"--v=1",
	}
}

// startAPIServer runs kube-apiserver against etcd and waits for /readyz.
func (c *Cluster) startAPIServer(bin string, opts Options) error {
	return startWithRetry(func(try int) error {
		port := testenv.FreePort()
		c.Host = "https://127.0.0.1:" + strconv.Itoa(port)
		c.apiBin, c.apiArgs = bin, append(c.apiServerArgs(port), opts.APIServerArgs...)
		c.startTimeout = opts.StartTimeout
		p, err := startProcess("kube-apiserver", bin, logPath(c.Dir, "kube-apiserver", try), c.apiArgs)
		if err != nil {
			return err
		}
		c.apiserver = p
		return waitHealthy(p, c.adminHTTPClient(), c.Host+"/readyz", opts.StartTimeout)
	})
}

// logPath is the log file of a server's start attempt: name.log, then
// name-2.log, ... (a retry must not read the previous try's bind error).
func logPath(dir, name string, try int) string {
	if try == 0 {
		return filepath.Join(dir, name+".log")
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, try+1))
}

// adminHTTPClient is a plain HTTP client with the admin's certificate.
func (c *Cluster) adminHTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	cert, err := tls.X509KeyPair(c.pki.adminCertPEM, c.pki.adminKeyPEM)
	if err != nil {
		panic(err) // made by newPKI a moment ago
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
}

// waitHealthy polls url until it answers 200. It fails at once when the
// process exits (with errPortTaken if a port was taken) and after timeout.
func waitHealthy(p *process, hc *http.Client, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if done, err := p.exited(); done {
			if p.addrInUse() {
				return fmt.Errorf("kubetest: %s: %w", p.name, errPortTaken)
			}
			return errExited(p, err)
		}
		status, body, err := get(hc, url)
		if err == nil && status == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("status %d %q, error %v", status, body, err)
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("kubetest: %s: GET %s not 200 within %v; last: %s; log %s:\n%s",
				p.name, url, timeout, last, p.logPath, p.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get fetches url, returning the status and the start of the body.
func get(hc *http.Client, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, string(b), nil
}
