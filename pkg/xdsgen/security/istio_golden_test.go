package security

import (
	"os"
	"path/filepath"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

var httpbin = Workload{Namespace: "foo", Labels: map[string]string{"app": "httpbin", "version": "v1"}}

// pushFrom decodes and validates file (as the control plane would) and
// indexes it with mesh.
func pushFrom(t testing.TB, file string, mesh *meshv1alpha1.MeshConfig) *model.PushContext {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	res := config.Decode(data, config.DecodeOptions{File: file})
	if len(res.Errors) > 0 {
		t.Fatalf("decode: %v", res.Errors)
	}
	for _, r := range res.Resources {
		// Istio's validation only: some inputs use experimental metadata
		// conditions sluice's support table rejects (the translation is
		// still Istio's).
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	if mesh == nil {
		mesh = meshconfig.Default()
	}
	return model.NewPushContext(model.PushOptions{Version: "1", Mesh: mesh, Resources: res.Resources})
}

// readGolden reads an Istio golden filter (YAML of an HttpFilter or a
// listener Filter) into into.
func readGolden(t *testing.T, file string, into proto.Message) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func compare(t *testing.T, file string, got, want proto.Message) {
	t.Helper()
	// protojson: Any payloads compare by content, not by bytes.
	g, _ := protojson.MarshalOptions{Multiline: true}.Marshal(got)
	w, _ := protojson.MarshalOptions{Multiline: true}.Marshal(want)
	if string(g) != string(w) {
		if dir := os.Getenv("SECURITY_GOLDEN_DUMP"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, file+".got"), g, 0o644)
			_ = os.WriteFile(filepath.Join(dir, file+".want"), w, 0o644)
		}
		t.Errorf("%s differs from what Istio's builder produces (SECURITY_GOLDEN_DUMP=dir writes both)", file)
	}
}

func tdMesh(td string, aliases ...string) *meshv1alpha1.MeshConfig {
	m := meshconfig.Default()
	m.TrustDomain, m.TrustDomainAliases = td, aliases
	return m
}

// TestIstioBuilderGoldens generates the RBAC filters of Istio's own
// builder test inputs and compares them with Istio's golden outputs
// (builder_test.go TestGenerator_GenerateHTTP/GenerateTCP, the non-CUSTOM
// cases).
func TestIstioBuilderGoldens(t *testing.T) {
	cases := []struct {
		dir, in string
		mesh    *meshv1alpha1.MeshConfig
		want    []string
	}{
		{"http", "allow-empty-rule", nil, []string{"allow-empty-rule-out.yaml"}},
		{"http", "allow-full-rule", nil, []string{"allow-full-rule-out.yaml"}},
		{"http", "allow-nil-rule", nil, []string{"allow-nil-rule-out.yaml"}},
		{"http", "allow-path", nil, []string{"allow-path-out.yaml"}},
		{"http", "audit-full-rule", nil, []string{"audit-full-rule-out.yaml"}},
		{"http", "deny-and-allow", nil, []string{"deny-and-allow-out1.yaml", "deny-and-allow-out2.yaml"}},
		{"http", "deny-empty-rule", nil, []string{"deny-empty-rule-out.yaml"}},
		{"http", "dry-run-allow-and-deny", nil, []string{"dry-run-allow-and-deny-out1.yaml", "dry-run-allow-and-deny-out2.yaml"}},
		{"http", "dry-run-allow", nil, []string{"dry-run-allow-out.yaml"}},
		{"http", "dry-run-mix", nil, []string{"dry-run-mix-out.yaml"}},
		{"http", "multiple-policies", nil, []string{"multiple-policies-out.yaml"}},
		{"http", "single-policy", nil, []string{"single-policy-out.yaml"}},
		{"http", "simple-policy-td-aliases", tdMesh("td1", "cluster.local"), []string{"simple-policy-td-aliases-out.yaml"}},
		{"http", "simple-policy-multiple-td-aliases", tdMesh("td1", "cluster.local", "some-td"), []string{"simple-policy-multiple-td-aliases-out.yaml"}},
		{"http", "simple-policy-principal-with-wildcard", tdMesh("td1", "foobar"), []string{"simple-policy-principal-with-wildcard-out.yaml"}},
		{"http", "td-aliases-source-principal", tdMesh("new-td", "old-td", "some-trustdomain"), []string{"td-aliases-source-principal-out.yaml"}},
		{"http", "trust-domains", nil, []string{"trust-domains-out.yaml"}},
		{"tcp", "allow-both-http-tcp", nil, []string{"allow-both-http-tcp-out.yaml"}},
		{"tcp", "allow-only-http", nil, []string{"allow-only-http-out.yaml"}},
		{"tcp", "audit-both-http-tcp", nil, []string{"audit-both-http-tcp-out.yaml"}},
		{"tcp", "deny-both-http-tcp", nil, []string{"deny-both-http-tcp-out.yaml"}},
		{"tcp", "dry-run-mix", nil, []string{"dry-run-mix-out.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.dir+"/"+tc.in, func(t *testing.T) {
			dir := filepath.Join("testdata", "istio", tc.dir)
			push := pushFrom(t, filepath.Join(dir, tc.in+"-in.yaml"), tc.mesh)
			var got []proto.Message
			if tc.dir == "http" {
				f, err := HTTPFilters(push, httpbin)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range f.HTTP {
					got = append(got, h)
				}
			} else {
				f, err := NetworkFilters(push, httpbin)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range f.Network {
					got = append(got, n)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d filters, Istio builds %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				var want proto.Message = &hcm.HttpFilter{}
				if tc.dir == "tcp" {
					want = &listener.Filter{}
				}
				readGolden(t, filepath.Join(dir, w), want)
				compare(t, w, got[i], want)
			}
		})
	}
}
