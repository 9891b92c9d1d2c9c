package testenv

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// AmbientPod is a pod in ambient mode on this machine: a network
// namespace whose traffic `sluice capture --ambient` (istio-cni's in-pod
// rules) sends to the node proxy listening inside it.
type AmbientPod struct {
	Name, Namespace string
	NS              *netnstest.NS
}

// AddAmbientPod makes the pod's namespace and captures it. It needs root,
// ip and iptables (skipped without, failed under CI=true).
func (m *Mesh) AddAmbientPod(namespace, name string) *AmbientPod {
	m.t.Helper()
	p := NewAmbientPod(m.t, namespace, name)
	p.Capture(m.t)
	return p
}

// NewAmbientPod makes the pod's namespace, not captured yet.
func NewAmbientPod(t testing.TB, namespace, name string) *AmbientPod {
	t.Helper()
	netnstest.Require(t, "iptables")
	return &AmbientPod{Name: name, Namespace: namespace, NS: netnstest.New(t)}
}

// Capture installs istio-cni's in-pod rules in the pod with `sluice
// capture --ambient`.
func (p *AmbientPod) Capture(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := p.NS.Command(ctx, Binary(t), "capture", "--ambient", "--ipv6=false").CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: sluice capture --ambient in %s: %v\n%s", p.NS.Name, err, out)
	}
}

// NodeProxy is a running `sluice proxy --type ztunnel`.
type NodeProxy struct {
	AdminAddress string
	// CNISocket is where a node agent answers the CNI plugin.
	CNISocket string
	Process   *Process
}

// StartNodeProxy runs the node proxy for pods, in the host's namespace
// as root (as ztunnel runs privileged on its node), and waits until it
// has captured them all.
func (m *Mesh) StartNodeProxy(pods ...*AmbientPod) *NodeProxy {
	m.t.Helper()
	n := &NodeProxy{AdminAddress: FreeAddr()}
	args := []string{"proxy", "--type", "ztunnel", "--name", "ztunnel", "--namespace", "istio-system",
		"--admin-address", n.AdminAddress, "--xds-address", m.XDSAddress, "--xds-tls=false",
		"--token-file", filepath.Join(m.StateDir, "bootstrap-token"), "--ca-root-file", filepath.Join(m.StateDir, "root-cert.pem")}
	for _, p := range pods {
		args = append(args, "--inpod", p.Namespace+"/"+p.Name+"="+p.NS.Path())
	}
	n.Process = StartWith(m.t, "ztunnel", ProcessOptions{}, args...)
	if err := pollHTTP("http://"+n.AdminAddress+"/ready", 200, StartTimeout, n.Process.Done()); err != nil {
		m.t.Fatalf("testenv: node proxy not ready: %v\n%s", err, n.Process.Tail(dumpLines))
	}
	return n
}

// StartNodeAgent runs the node proxy as on a Kubernetes node: no
// --inpod, its node agent watching the API server of kubeconfig for the
// ambient pods of node (it captures them itself). It waits for /ready
// only (the pods are captured as the API server's objects come). It
// answers the CNI plugin (sluice-cni) on NodeProxy.CNISocket.
func (m *Mesh) StartNodeAgent(kubeconfig, node string, extra ...string) *NodeProxy {
	m.t.Helper()
	netnstest.Require(m.t, "iptables")
	n := &NodeProxy{AdminAddress: FreeAddr(), CNISocket: filepath.Join(m.t.TempDir(), "cni.sock")}
	args := append([]string{"proxy", "--type", "ztunnel", "--name", "ztunnel-" + node, "--namespace", "istio-system",
		"--admin-address", n.AdminAddress, "--kubeconfig", kubeconfig, "--node", node, "--cni-socket", n.CNISocket},
		append(m.ProxyControlArgs(), extra...)...)
	n.Process = StartWith(m.t, "ztunnel", ProcessOptions{}, args...)
	if err := pollHTTP("http://"+n.AdminAddress+"/ready", 200, StartTimeout, n.Process.Done()); err != nil {
		m.t.Fatalf("testenv: node proxy not ready: %v\n%s", err, n.Process.Tail(dumpLines))
	}
	return n
}

// EnableForwarding turns on IPv4 forwarding in the host's namespace for
// the test (pods reach each other through it, as through a node's
// bridge); the setting found is restored when the last test of this
// process that asked for forwarding ends.
func EnableForwarding(t testing.TB) {
	t.Helper()
	const path = "/proc/sys/net/ipv4/ip_forward"
	forwarding.Lock()
	defer forwarding.Unlock()
	if forwarding.users == 0 {
		prev, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			t.Fatalf("testenv: enable forwarding: %v", err)
		}
		forwarding.prev = prev
	}
	forwarding.users++
	t.Cleanup(func() {
		forwarding.Lock()
		defer forwarding.Unlock()
		if forwarding.users--; forwarding.users == 0 {
			os.WriteFile(path, forwarding.prev, 0o644)
		}
	})
}

var forwarding struct {
	sync.Mutex
	users int
	prev  []byte
}
