package testenv

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluice-mesh/sluice/internal/netnstest"
)

// ProxyUID is the user a captured sidecar runs as: the capture rules let
// its own traffic out uncaptured (Istio's 1337).
const ProxyUID = 1337

// CapturedOptions describe a pod for AddCaptured.
type CapturedOptions struct {
	// Name is the pod name; default "client".
	Name string
	// Namespace of the pod; default "default".
	Namespace string
	// Labels of the pod; nil means {app: Name}.
	Labels map[string]string
	// ServiceAccount is the pod's identity; empty leaves the default.
	ServiceAccount string
	// CaptureArgs replace the capture's default flags (after -p/-z/-u).
	CaptureArgs []string
}

// Captured is a pod as Kubernetes with Istio makes it, on this machine: a
// network namespace joined to the host by a veth pair, whose traffic
// `sluice capture` redirects (istio-init's rules) to a sidecar running
// inside it as ProxyUID with --interception-mode REDIRECT.
type Captured struct {
	Name, Namespace string
	Labels          map[string]string
	// NS is the pod's network namespace; NS.IP is the pod IP.
	NS *netnstest.NS
	// AdminAddress is the sidecar's admin endpoint (the pod IP, port
	// 15000, left out of the capture), reachable from the host.
	AdminAddress string
	Sidecar      *Process
	// HTTP sends from inside the namespace as the app would: its
	// connections are captured. It never follows redirects.
	HTTP *http.Client
}

// AddCaptured starts a captured pod (MeshOptions.XDSListenAll is needed:
// the sidecar reaches the control plane at the veth peer's address) and
// waits until its sidecar is ready. It needs root, ip and iptables: a test
// without them is skipped, or fails under CI=true.
func (m *Mesh) AddCaptured(o CapturedOptions) *Captured {
	m.t.Helper()
	netnstest.Require(m.t, "iptables")
	if !m.opts.XDSListenAll {
		m.t.Fatalf("testenv: AddCaptured needs MeshOptions.XDSListenAll")
	}
	if o.Name == "" {
		o.Name = "client"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	labels := maps.Clone(o.Labels)
	if labels == nil {
		labels = map[string]string{"app": o.Name}
	}
	ns := netnstest.New(m.t)
	c := &Captured{Name: o.Name, Namespace: o.Namespace, Labels: labels, NS: ns,
		AdminAddress: net.JoinHostPort(ns.IP.String(), "15000")}
	m.capture(ns, o.CaptureArgs)
	dir := m.proxyFiles()
	_, xdsPort, _ := net.SplitHostPort(m.XDSAddress)
	args := []string{"proxy", "--type", "sidecar", "--name", o.Name, "--namespace", o.Namespace,
		"--labels", labelString(labels), "--ip", ns.IP.String(), "--interception-mode", "REDIRECT",
		"--admin-address", c.AdminAddress,
		"--xds-address", net.JoinHostPort(ns.HostIP.String(), xdsPort), "--xds-tls=false",
		"--token-file", filepath.Join(dir, "bootstrap-token"), "--ca-root-file", filepath.Join(dir, "root-cert.pem")}
	if o.ServiceAccount != "" {
		args = append(args, "--service-account", o.ServiceAccount)
	}
	args = append(args, m.opts.ProxyArgs...)
	id := o.Namespace + "/" + o.Name
	c.Sidecar = StartWith(m.t, "captured "+id, ProcessOptions{Binary: filepath.Join(dir, "sluice"), UID: ProxyUID, GID: ProxyUID, Start: ns.Start}, args...)
	if err := pollHTTP("http://"+c.AdminAddress+"/ready", 200, StartTimeout, c.Sidecar.Done()); err != nil {
		m.t.Fatalf("testenv: captured sidecar %s not ready: %v\n%s", id, err, c.Sidecar.Tail(dumpLines))
	}
	tr := &http.Transport{DialContext: ns.Dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	c.HTTP = &http.Client{Transport: tr, Timeout: RequestTimeout, CheckRedirect: noRedirects}
	m.t.Cleanup(tr.CloseIdleConnections)
	m.addProxy(&proxyRef{name: o.Name, namespace: o.Namespace, admin: c.AdminAddress, proc: c.Sidecar})
	return c
}

// capture installs Istio's REDIRECT rules in ns with `sluice capture`, as
// istio-init does in a pod: outbound to 15001, inbound to 15006, the
// proxy's user left alone; the admin port is left out so the host can
// read it.
func (m *Mesh) capture(ns *netnstest.NS, extra []string) {
	m.t.Helper()
	args := []string{"capture", "-p", "15001", "-z", "15006", "-u", strconv.Itoa(ProxyUID), "-m", "REDIRECT"}
	if extra == nil {
		extra = []string{"-i", "*", "-b", "*", "-d", "15090,15021,15020,15000"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, Binary(m.t), append(args, extra...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("testenv: sluice capture in %s: %v\n%s", ns.Name, err, out)
	}
}

// proxyFiles is a folder ProxyUID can read holding a copy of the sluice
// binary, the bootstrap token and the root certificate (the originals
// are root's, 0600 in private temporary folders), made once per mesh.
func (m *Mesh) proxyFiles() string {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uidDir != "" {
		return m.uidDir
	}
	dir, err := os.MkdirTemp("", "sluice-uid-")
	if err != nil {
		m.t.Fatalf("testenv: %v", err)
	}
	m.t.Cleanup(func() { os.RemoveAll(dir) })
	files := []struct {
		src, name string
		mode      os.FileMode
	}{
		{Binary(m.t), "sluice", 0o755},
		{filepath.Join(m.StateDir, "bootstrap-token"), "bootstrap-token", 0o600},
		{filepath.Join(m.StateDir, "root-cert.pem"), "root-cert.pem", 0o644},
	}
	for _, f := range files {
		dst := filepath.Join(dir, f.name)
		if err := copyFile(f.src, dst, f.mode); err != nil {
			m.t.Fatalf("testenv: %v", err)
		}
		if err := os.Chown(dst, ProxyUID, ProxyUID); err != nil {
			m.t.Fatalf("testenv: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		m.t.Fatalf("testenv: %v", err)
	}
	m.uidDir = dir
	return dir
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
