package kubetest

import (
	"bytes"
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
	// EnvEtcd names an etcd binary to use instead of the cached build
	// (e.g. Debian's /usr/bin/etcd, to see what an older etcd does).
	EnvEtcd = "SLUICE_ETCD"
	// EnvCache is the folder of the cached builds (default
	// ~/.cache/sluice/kube), as hack/build-kube-apiserver.sh reads it.
	EnvCache = "SLUICE_KUBE_CACHE"
)

// DefaultVersion is the Kubernetes release whose kube-apiserver the tests
// run: hack/build-kube-apiserver.sh builds it from the Go module proxy.
const DefaultVersion = "v1.36.3"

// DefaultEtcdVersion is the etcd the tests run, the one kubeadm 1.36 pins
// (DefaultEtcdVersion in cmd/kubeadm/app/constants): hack/build-etcd.sh
// builds it from the Go module proxy. Debian's etcd-server (3.4.23) is too
// old: kube-apiserver 1.36 then refuses streaming lists (see the script).
const DefaultEtcdVersion = "v3.6.8"

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

// binarySpec says where one server binary comes from.
type binarySpec struct {
	name       string // file name: kube-apiserver, etcd
	override   string // environment variable naming a binary to use instead
	versionEnv string // the build script's version variable
	version    string
	subdir     string // under the cache: "" for kube-apiserver, "etcd" for etcd
	script     string // builds it into the cache, relative to the module root
}

func apiServerSpec(version string) binarySpec {
	return binarySpec{name: "kube-apiserver", override: EnvAPIServer, versionEnv: "KUBE_VERSION",
		version: version, script: "hack/build-kube-apiserver.sh"}
}

func etcdSpec(version string) binarySpec {
	return binarySpec{name: "etcd", override: EnvEtcd, versionEnv: "ETCD_VERSION",
		version: version, subdir: "etcd", script: "hack/build-etcd.sh"}
}

// command is how to build the binary by hand.
func (s binarySpec) command() string {
	return s.versionEnv + "=" + s.version + " " + s.script
}

// cached is where the build script puts the binary:
// $SLUICE_KUBE_CACHE (default ~/.cache/sluice/kube)/[subdir/]version/name.
func (s binarySpec) cached() (string, error) {
	dir := os.Getenv(EnvCache)
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("kubetest: no cache folder: %w", err)
		}
		dir = filepath.Join(cache, "sluice", "kube")
	}
	return filepath.Join(dir, s.subdir, s.version, s.name), nil
}

// builds remembers one build attempt per binary and version for the test
// binary's life, so a failed offline build is not repeated by every test.
var builds struct {
	sync.Mutex
	done map[string]buildResult
}

type buildResult struct {
	path string
	err  error
}

// binary returns the server binary to run: the one the spec's environment
// variable names, else the cached build. A missing cached build fails the
// test under CI; elsewhere the build script runs once (minutes for
// kube-apiserver), and the test is skipped with the command to run if that
// fails.
func binary(t testing.TB, s binarySpec) string {
	t.Helper()
	if p := os.Getenv(s.override); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("kubetest: %s=%q: %v", s.override, p, err)
		}
		return p
	}
	path, err := s.cached()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if inCI() {
		missing(t, "no %s %s at %s: run %s", s.name, s.version, path, s.command())
	}
	builds.Lock()
	defer builds.Unlock()
	if builds.done == nil {
		builds.done = map[string]buildResult{}
	}
	key := s.name + "@" + s.version
	r, ok := builds.done[key]
	if !ok {
		t.Logf("kubetest: no %s %s at %s: building it with %s (once)", s.name, s.version, path, s.script)
		r.path, r.err = runBuildScript(s)
		builds.done[key] = r
	}
	if r.err != nil {
		missing(t, "building %s %s failed (offline?): %v; run %s", s.name, s.version, r.err, s.command())
	}
	return r.path
}

// runBuildScript runs the spec's build script (at nice 10: it compiles for
// minutes) and returns the path it prints last.
func runBuildScript(s binarySpec) (string, error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("nice", "-n", "10", "bash", filepath.Join(root, s.script))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), s.versionEnv+"="+s.version)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return "", fmt.Errorf("%s after %v: %w\n%s", s.script, time.Since(start).Round(time.Second), err, tail)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := lines[len(lines)-1]
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", s.script, path, err)
	}
	return path, nil
}
