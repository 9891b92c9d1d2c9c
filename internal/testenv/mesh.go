package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts the mesh helpers use.
const (
	// StartTimeout bounds how long a process may take to become ready.
	StartTimeout = 20 * time.Second
	// startAttempts is how often a server is started with fresh ports when
	// the ones it was given were taken in the meantime.
	startAttempts = 3
)

// MeshOptions configure NewMesh.
type MeshOptions struct {
	// ConfigDir is the folder the control plane reads; empty means a new
	// folder under t.TempDir().
	ConfigDir string
	// MeshConfigYAML, when set, is written to a file passed with
	// --mesh-config (Istio MeshConfig YAML).
	MeshConfigYAML string
	// ControlArgs are extra arguments for "sluice control".
	ControlArgs []string
	// ProxyArgs are extra arguments for every "sluice proxy" the mesh starts.
	ProxyArgs []string
	// XDSTLS serves xDS/CA over TLS (control --xds-tls); proxies verify it
	// with the root file control writes in StateDir.
	XDSTLS bool
	// Kubeconfig, when set, is passed as control's --kubeconfig: config
	// comes from that API server. The folder is then passed too only when
	// ConfigDir is set (the folder adds to the cluster).
	Kubeconfig string
	// XDSListenAll makes the control plane serve xDS on every address
	// (0.0.0.0, same port), so sidecars in network namespaces reach it at
	// their veth peer's address (AddCaptured); the mesh's own proxies
	// still use 127.0.0.1.
	XDSListenAll bool
	// Store, when set, takes the config WriteConfig and RemoveConfig are
	// given instead of the folder: on Kubernetes, objects applied through
	// the API server that Kubeconfig names (kubetest.Applier). The mesh
	// config is then the ConfigMap istio-system/istio (key mesh), as
	// istiod reads it, not a --mesh-config file.
	Store ConfigStore
}

// ConfigStore holds config by file name, as the folder does: ApplySet
// makes the objects of yaml the set name's whole content (objects it held
// before and yaml lacks are deleted), DeleteSet deletes them all.
type ConfigStore interface {
	ApplySet(ctx context.Context, name, yaml string) error
	DeleteSet(ctx context.Context, name string) error
}

// meshConfigSet is the set name of the mesh ConfigMap applied to a Store.
const meshConfigSet = "mesh-config"

// Mesh is a running control plane plus the workloads and clients a test
// adds to it. All of it is stopped when the test ends.
type Mesh struct {
	t    testing.TB
	opts MeshOptions

	// ConfigDir is the folder "sluice control" watches.
	ConfigDir string
	// XDSAddress and HTTPAddress are the control plane's listeners.
	XDSAddress, HTTPAddress string
	// Control is the control plane process.
	Control *Process
	// StateDir is control's --state-dir: the bootstrap token every proxy
	// the mesh starts presents, the token signing key, root-cert.pem.
	StateDir string

	stageDir string

	mu        sync.Mutex
	proxies   []*proxyRef
	lastWrite time.Time
	files     map[string][]resourceKey // config files written, and what they define
	contents  map[string]string        // their content
	// uidDir holds the files a captured sidecar's user reads (captured.go).
	uidDir string
}

// proxyRef is a proxy the mesh started, for readiness and sync checks.
type proxyRef struct {
	name, namespace string
	admin           string
	proc            *Process
}

// NewMesh starts "sluice control" on free loopback ports and waits until it
// answers /ready with 200.
func NewMesh(t testing.TB, opts MeshOptions) *Mesh {
	t.Helper()
	m := &Mesh{t: t, opts: opts, ConfigDir: opts.ConfigDir, stageDir: t.TempDir(), StateDir: filepath.Join(t.TempDir(), "state")}
	if m.ConfigDir == "" {
		m.ConfigDir = filepath.Join(t.TempDir(), "config")
	}
	if err := os.MkdirAll(m.ConfigDir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var meshArgs []string
	switch {
	case opts.MeshConfigYAML != "" && opts.Store != nil:
		cm := MustYAML(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "istio", "namespace": "istio-system"},
			"data":     map[string]any{"mesh": opts.MeshConfigYAML}})
		if err := opts.Store.ApplySet(context.Background(), meshConfigSet, cm); err != nil {
			t.Fatalf("testenv: mesh config: %v", err)
		}
	case opts.MeshConfigYAML != "":
		path := filepath.Join(m.stageDir, "mesh-config.yaml")
		if err := os.WriteFile(path, []byte(opts.MeshConfigYAML), 0o644); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		meshArgs = []string{"--mesh-config", path}
	}
	for attempt := 1; ; attempt++ {
		m.XDSAddress, m.HTTPAddress = FreeAddr(), FreeAddr()
		xdsListen := m.XDSAddress
		if opts.XDSListenAll {
			_, port, _ := net.SplitHostPort(m.XDSAddress)
			xdsListen = net.JoinHostPort("0.0.0.0", port)
		}
		args := append([]string{"control",
			"--xds-address", xdsListen, "--http-address", m.HTTPAddress,
			"--state-dir", m.StateDir, "--xds-tls=" + strconv.FormatBool(opts.XDSTLS)}, meshArgs...)
		if opts.Kubeconfig != "" {
			args = append(args, "--kubeconfig", opts.Kubeconfig)
		}
		if opts.Kubeconfig == "" || opts.ConfigDir != "" {
			args = append(args, "--config-dir", m.ConfigDir)
		}
		args = append(args, opts.ControlArgs...)
		m.Control = Start(t, "control", args...)
		err := pollHTTP(m.URL("/ready"), 200, StartTimeout, m.Control.Done())
		if err == nil {
			return m
		}
		if attempt < startAttempts && m.Control.addrInUse() {
			m.Control.Stop()
			continue
		}
		t.Fatalf("testenv: control plane not ready: %v\n%s", err, m.Control.Tail(dumpLines))
	}
}

// ProxyControlArgs are the arguments a "sluice proxy" of this mesh needs
// to reach the control plane: its address, the bootstrap token, TLS and
// the root file to verify it with.
func (m *Mesh) ProxyControlArgs() []string {
	return []string{"--xds-address", m.XDSAddress,
		"--token-file", filepath.Join(m.StateDir, "bootstrap-token"),
		"--ca-root-file", filepath.Join(m.StateDir, "root-cert.pem"),
		"--xds-tls=" + strconv.FormatBool(m.opts.XDSTLS)}
}

// URL returns the control plane's status URL for path.
func (m *Mesh) URL(path string) string { return "http://" + m.HTTPAddress + path }

// WriteConfig writes YAML into the config folder under name, atomically: the
// content goes to a temporary file outside the folder that is then renamed
// into place, so the control plane never reads half a file. With a Store
// the objects are applied there as the set name.
func (m *Mesh) WriteConfig(name, yaml string) {
	m.t.Helper()
	if err := m.writeConfig(name, yaml); err != nil {
		m.t.Fatalf("testenv: write config %s: %v", name, err)
	}
}

func (m *Mesh) writeConfig(name, yaml string) error {
	if name == "" || strings.ContainsRune(name, os.PathSeparator) {
		return fmt.Errorf("config name %q must be a plain file name", name)
	}
	if m.opts.Store != nil {
		if err := m.opts.Store.ApplySet(context.Background(), name, yaml); err != nil {
			return err
		}
		m.touched(name, yaml, true)
		return nil
	}
	dst := filepath.Join(m.ConfigDir, name)
	tmp, err := os.CreateTemp(m.stageDir, "stage-*.yaml")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(yaml); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		// Another filesystem: stage beside the target under a dot name.
		os.Remove(tmp.Name())
		hidden := filepath.Join(m.ConfigDir, "."+name+".tmp")
		if err := os.WriteFile(hidden, []byte(yaml), 0o644); err != nil {
			return err
		}
		if err := os.Rename(hidden, dst); err != nil {
			return err
		}
	}
	m.touched(name, yaml, true)
	return nil
}

// RemoveConfig deletes a file written by WriteConfig.
func (m *Mesh) RemoveConfig(name string) {
	m.t.Helper()
	if m.opts.Store != nil {
		if err := m.opts.Store.DeleteSet(context.Background(), name); err != nil {
			m.t.Fatalf("testenv: remove config %s: %v", name, err)
		}
		m.touched(name, "", false)
		return
	}
	if err := os.Remove(filepath.Join(m.ConfigDir, name)); err != nil {
		m.t.Fatalf("testenv: remove config %s: %v", name, err)
	}
	m.touched(name, "", false)
}

// touched records a write (exists) or removal of a config file, for Synced.
// Rewriting a file with the same content changes nothing the control plane
// would push, so it does not count as a write.
func (m *Mesh) touched(name, content string, exists bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files, m.contents = map[string][]resourceKey{}, map[string]string{}
	}
	if old, ok := m.contents[name]; ok && exists && old == content {
		return
	}
	m.lastWrite = time.Now()
	if exists {
		m.files[name], m.contents[name] = keysOf(content), content
	} else {
		delete(m.files, name)
		delete(m.contents, name)
	}
}

// Status returns the control plane's /debug/status, failing the test if it
// cannot be read.
func (m *Mesh) Status() ControlStatus {
	m.t.Helper()
	st, err := m.TryStatus()
	if err != nil {
		m.t.Fatalf("testenv: %v", err)
	}
	return st
}

// TryStatus returns the control plane's /debug/status or the error reading it.
func (m *Mesh) TryStatus() (ControlStatus, error) {
	var st ControlStatus
	err := getJSON(m.URL("/debug/status"), &st)
	return st, err
}

func (m *Mesh) addProxy(r *proxyRef) {
	m.mu.Lock()
	m.proxies = append(m.proxies, r)
	m.mu.Unlock()
}

func (m *Mesh) proxyRefs() []*proxyRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*proxyRef(nil), m.proxies...)
}

// WaitReady waits until every proxy the mesh started answers /ready on its
// admin address with 200.
func (m *Mesh) WaitReady() {
	m.t.Helper()
	for _, p := range m.proxyRefs() {
		if err := pollHTTP("http://"+p.admin+"/ready", 200, StartTimeout, p.proc.Done()); err != nil {
			m.t.Fatalf("testenv: proxy %s/%s not ready: %v\n%s", p.namespace, p.name, err, p.proc.Tail(dumpLines))
		}
	}
}

// WaitConverged calls check until it returns nil, failing the test with the
// last error if that does not happen within timeout. Configuration takes a
// moment to reach every proxy, so tests check behaviour this way after a
// change, as upstream conformance suites do.
func (m *Mesh) WaitConverged(check func() error, timeout time.Duration) {
	m.t.Helper()
	if err := Eventually(check, timeout); err != nil {
		m.t.Fatalf("testenv: not converged: %v", err)
	}
}
