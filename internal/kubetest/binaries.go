package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Environment variables that steer where the binaries come from.
const (
	// EnvAPIServer names a kube-apiserver binary to use instead of the
	// cached build.
	EnvAPIServer = "SLUICE_KUBE_APISERVER"
	// EnvEtcd names an etcd binary to use instead of the one on PATH.
	EnvEtcd = "SLUICE_ETCD"
	// EnvCache is the folder of the cached builds (default
	// ~/.cache/sluice/kube), as hack/build-kube-apiserver.sh reads it.
	EnvCache = "SLUICE_KUBE_CACHE"
)

// DefaultVersion is the Kubernetes release whose kube-apiserver the tests
// run: hack/build-kube-apiserver.sh builds it from the Go module proxy.
const DefaultVersion = "v1.36.3"

// buildScript is the script, relative to the module root, that builds
// kube-apiserver into the cache.
const buildScript = "hack/build-kube-apiserver.sh"

// inCI tells whether a missing binary must fail the test (CI=true, as
// .ci/run sets it) rather than skip it; the Makefile's staticcheck rule
// takes the same values.
func inCI() bool {
	switch os.Getenv("CI") {
	case "true", "TRUE", "True", "1":
		return true
	}
	return false
}

// missing fails the test under CI and skips it elsewhere, with how to get
// the binary.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("kubetest: %s (CI=%s: a missing binary fails; .ci/run installs it)", msg, os.Getenv("CI"))
	}
	t.Skipf("kubetest: %s", msg)
}

// cachedAPIServer is where the build script puts kube-apiserver version.
func cachedAPIServer(version string) (string, error) {
	dir := os.Getenv(EnvCache)
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("kubetest: no cache folder: %w", err)
		}
		dir = filepath.Join(cache, "sluice", "kube")
	}
	return filepath.Join(dir, version, "kube-apiserver"), nil
}

// builds remembers one build attempt per version for the test binary's
// life, so a failed offline build is not repeated by every test.
var builds struct {
	sync.Mutex
	done map[string]buildResult
}

type buildResult struct {
	path string
	err  error
}

// apiServerBinary returns the kube-apiserver to run: $SLUICE_KUBE_APISERVER,
// else the cached build of version. A missing cached build fails the test
// under CI; elsewhere the build script runs once (minutes), and the test is
// skipped with the command to run if that fails.
func apiServerBinary(t testing.TB, version string) string {
	t.Helper()
	if p := os.Getenv(EnvAPIServer); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kubetest: %s=%q: %v", EnvAPIServer, p, err)
		}
		return p
	}
	path, err := cachedAPIServer(version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if inCI() {
		missing(t, "no kube-apiserver %s at %s: run KUBE_VERSION=%s %s", version, path, version, buildScript)
	}
	builds.Lock()
	defer builds.Unlock()
	if builds.done == nil {
		builds.done = map[string]buildResult{}
	}
	r, ok := builds.done[version]
	if !ok {
		t.Logf("kubetest: no kube-apiserver %s at %s: building it with %s (minutes, once)", version, path, buildScript)
		r.path, r.err = runBuildScript(version)
		builds.done[version] = r
	}
	if r.err != nil {
		missing(t, "building kube-apiserver %s failed (offline?): %v; run KUBE_VERSION=%s %s", version, r.err, version, buildScript)
	}
	return r.path
}

// runBuildScript runs hack/build-kube-apiserver.sh (at nice 10: it compiles
// for minutes) and returns the path it prints last.
func runBuildScript(version string) (string, error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("nice", "-n", "10", "bash", filepath.Join(root, buildScript))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBE_VERSION="+version)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return "", fmt.Errorf("%s after %v: %w\n%s", buildScript, time.Since(start).Round(time.Second), err, tail)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := lines[len(lines)-1]
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", buildScript, path, err)
	}
	return path, nil
}

// etcdBinary returns the etcd to run: $SLUICE_ETCD, else etcd on PATH
// (Debian's etcd-server, which .ci/run installs).
func etcdBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvEtcd); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kubetest: %s=%q: %v", EnvEtcd, p, err)
		}
		return p
	}
	p, err := exec.LookPath("etcd")
	if errors.Is(err, exec.ErrNotFound) {
		missing(t, "no etcd on PATH: apt-get install etcd-server (or set %s)", EnvEtcd)
	} else if err != nil {
		t.Fatalf("kubetest: etcd: %v", err)
	}
	return p
}
