package rbac

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// TestIstioGoldenFilters: every RBAC filter in Istio's builder golden
// files (testdata/istio, copied from pilot/pkg/security/authz/builder)
// compiles: the proxy accepts each shape Istio generates, HTTP and TCP,
// with the counters' names Istio's stat prefixes make.
func TestIstioGoldenFilters(t *testing.T) {
	n := 0
	for _, dir := range []string{"http", "tcp"} {
		files, _ := filepath.Glob(filepath.Join("testdata/istio", dir, "*.yaml"))
		if len(files) < 7 {
			t.Fatalf("%s: only %d golden files", dir, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "name: envoy.filters.http.rbac") && !strings.Contains(string(b), "name: envoy.filters.network.rbac") {
				continue // ext_authz
			}
			n++
			if dir == "http" {
				var hf hcm.HttpFilter
				fromYAML(t, string(b), &hf)
				if _, err := (factory{}).NewFilter(hf.GetTypedConfig()); err != nil {
					t.Errorf("%s: %v", f, err)
				}
				continue
			}
			var lf listener.Filter
			fromYAML(t, string(b), &lf)
			nf, err := CompileNetwork(lf.GetTypedConfig())
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if nf.prefix != "tcp." {
				t.Errorf("%s: stat prefix %q, want Istio's tcp.", f, nf.prefix)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d RBAC filters compiled", n)
	}
}
