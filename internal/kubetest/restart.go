package kubetest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// RestartAPIServer stops kube-apiserver (SIGTERM, as a rolling upgrade
// does) and starts it again on the same port with the same flags and etcd,
// so clients keep their configuration: for tests of reconnects and
// resyncs. It returns once /readyz answers again, with how long the API
// server was away.
func (c *Cluster) RestartAPIServer(t testing.TB) time.Duration {
	t.Helper()
	begin := time.Now()
	c.apiserver.Stop()
	c.restarts++
	log := filepath.Join(c.Dir, fmt.Sprintf("kube-apiserver-restart-%d.log", c.restarts))
	p, err := startProcess("kube-apiserver", c.apiBin, log, c.apiArgs)
	if err != nil {
		t.Fatal(err)
	}
	c.apiserver = p
	// The port was just released by the old process: no retry on other
	// ports, since clients hold this one.
	if err := waitHealthy(p, c.adminHTTPClient(), c.Host+"/readyz", c.startTimeout); err != nil {
		t.Fatalf("kubetest: restart: %v", err)
	}
	away := time.Since(begin)
	t.Logf("kubetest: kube-apiserver restarted in %v", away.Round(time.Millisecond))
	return away
}
