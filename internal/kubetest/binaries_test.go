package kubetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestBuildScriptsUseTheCachedPath checks that each build script and
// binarySpec.cached agree on where a version's binary lives, and that a
// script leaves a binary that is there alone (the cache is keyed by
// version): it runs the real scripts on a cache holding a stand-in binary,
// which they must print without building.
func TestBuildScriptsUseTheCachedPath(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv(EnvCache, cache)
	t.Setenv(EnvAPIServer, "")
	t.Setenv(EnvEtcd, "")
	for _, s := range []binarySpec{apiServerSpec("v1.99.0"), etcdSpec("v3.99.0")} {
		path, err := s.cached()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(path, cache+string(filepath.Separator)) {
			t.Fatalf("%s cached at %s, outside %s=%s", s.name, path, EnvCache, cache)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", filepath.Join(root, s.script))
		cmd.Env = append(os.Environ(), s.versionEnv+"="+s.version, "GO=false") // building would fail
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", s.command(), err)
		}
		if got := strings.TrimSpace(string(out)); got != path {
			t.Errorf("%s printed %q, want the cached %q", s.command(), got, path)
		}
		if got := binary(t, s); got != path {
			t.Errorf("binary(%s) = %q, want %q", s.name, got, path)
		}
	}
}

// TestMissingBinaryFailsInCI runs Start in a child test process with
// CI=true and an empty cache: it must fail (not skip, not build) and say
// which script to run.
func TestMissingBinaryFailsInCI(t *testing.T) {
	if os.Getenv("KUBETEST_CHILD") == "1" {
		Start(t, Options{})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinaryFailsInCI$", "-test.v")
	cmd.Env = append(os.Environ(), "KUBETEST_CHILD=1", "CI=true", EnvCache+"="+t.TempDir(), EnvAPIServer+"=", EnvEtcd+"=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Start with CI=true and no binaries passed:\n%s", out)
	}
	for _, want := range []string{"--- FAIL: TestMissingBinaryFailsInCI", "hack/build-etcd.sh", "CI=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}
