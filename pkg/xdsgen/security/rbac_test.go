package security

import (
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// TestCustomFailsClosed: sluice's config rejects CUSTOM; should a CUSTOM
// policy reach the generator anyway (a caller that skips the support
// table), its rules deny, as istiod's getBadCustomDenyRules does for a
// provider it cannot serve: never silently allowing.
func TestCustomFailsClosed(t *testing.T) {
	res := config.Decode([]byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: ext-authz}
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
`), config.DecodeOptions{File: "p.yaml"})
	if len(config.Unsupported(res.Resources[0])) == 0 {
		t.Fatal("CUSTOM is not rejected by the support table")
	}
	push := model.NewPushContext(model.PushOptions{Mesh: meshconfig.Default(), Resources: res.Resources})
	f, err := HTTPFilters(push, Workload{Namespace: "foo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.HTTP) != 1 {
		t.Fatalf("%d filters", len(f.HTTP))
	}
	r := &rbachttp.RBAC{}
	if err := f.HTTP[0].GetTypedConfig().UnmarshalTo(r); err != nil {
		t.Fatal(err)
	}
	if r.GetRules().GetAction() != rbacpb.RBAC_DENY || r.GetRules().GetPolicies()["ns[foo]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"] == nil {
		t.Errorf("CUSTOM became %v", r)
	}
}

// TestNoPoliciesNoFilters: a workload no policy selects gets no rbac
// filter (every request allowed), and no jwt_authn filter.
func TestNoPoliciesNoFilters(t *testing.T) {
	push := pushFrom(t, "testdata/istio/http/single-policy-in.yaml", nil)
	f, err := HTTPFilters(push, Workload{Namespace: "other", Labels: map[string]string{"app": "httpbin"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := NetworkFilters(push, Workload{Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.HTTP) != 0 || len(n.Network) != 0 {
		t.Errorf("filters for an unselected workload: %v %v", f.HTTP, n.Network)
	}
}

// TestForPort: HTTP protocols get the HTTP filters, others the network
// ones.
func TestForPort(t *testing.T) {
	push := pushFrom(t, "testdata/istio/tcp/allow-both-http-tcp-in.yaml", nil)
	h, err := ForPort(push, httpbin, registry.ProtocolHTTP)
	if err != nil || len(h.HTTP) != 1 || len(h.Network) != 0 {
		t.Errorf("HTTP port: %v %v", h, err)
	}
	n, err := ForPort(push, httpbin, registry.ProtocolTCP)
	if err != nil || len(n.Network) != 1 || len(n.HTTP) != 0 {
		t.Errorf("TCP port: %v %v", n, err)
	}
}
