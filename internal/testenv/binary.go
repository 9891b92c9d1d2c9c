// Package testenv runs sluice for real in tests: it builds the sluice binary
// once per test binary, starts "sluice control", "sluice proxy" and
// "sluice echo" as separate processes on loopback with free ports, writes
// configuration into the control plane's folder and sends traffic through
// the sidecars. End-to-end tests, the conformance runner and benchmarks
// share it.
//
// Nothing here fakes the proxy or the control plane: every process is the
// real binary, and every request crosses real sockets.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Environment variables that steer the harness.
const (
	// EnvBinary names a prebuilt sluice binary to use instead of building one.
	EnvBinary = "SLUICE_BIN"
	// EnvRace set to "1" builds the binary with the race detector.
	EnvRace = "SLUICE_TEST_RACE"
)

var build struct {
	once sync.Once
	path string
	dir  string // temp dir holding a binary we built; removed by Main
	err  error
}

// Binary returns the path of the sluice binary, building ./cmd/sluice once
// per test binary (with -race when SLUICE_TEST_RACE=1). SLUICE_BIN names a
// prebuilt binary to use instead. A build failure fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.path, build.dir, build.err = buildBinary()
	})
	if build.err != nil {
		t.Fatalf("testenv: %v", build.err)
	}
	return build.path
}

func buildBinary() (path, dir string, err error) {
	if bin := os.Getenv(EnvBinary); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", "", fmt.Errorf("%s=%q: %w", EnvBinary, bin, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", "", fmt.Errorf("%s=%q: %w", EnvBinary, bin, err)
		}
		return abs, "", nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "sluice-testbin-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "sluice")
	args := []string{"build", "-o", path}
	if os.Getenv(EnvRace) == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/sluice")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("go %v in %s failed after %v: %v\n%s", args, root,
			time.Since(start).Round(time.Millisecond), err, out)
	}
	return path, dir, nil
}

// ModuleRoot finds the root of the sluice module by walking up from the
// working directory to the folder holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// Main runs the tests of a package that uses testenv and then removes the
// binary it built. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}
