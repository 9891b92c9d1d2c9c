package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// TestDebugAuthz: the admin's /debug/authz lists the proxy's recent RBAC
// decisions with the deciding policy (text and JSON), and /stats counts
// them; decisions reach them through the proxy's shared scope.
func TestDebugAuthz(t *testing.T) {
	p := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	admin := httptest.NewServer(p.adminHandler())
	defer admin.Close()
	a, _ := anypb.New(&rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_DENY, Policies: map[string]*rbacpb.Policy{
		"ns[db]-policy[no-tcp]-rule[0]": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_Any{Any: true}}},
			Principals: []*rbacpb.Principal{{Identifier: &rbacpb.Principal_Any{Any: true}}}}}}})
	nf, err := rbac.CompileNetwork(a)
	if err != nil {
		t.Fatal(err)
	}
	conn := &httpfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.0.0.7:5555"), LocalAddr: netip.MustParseAddrPort("10.0.0.8:3306")}
	if nf.Allow(conn, p.http.Stats) {
		t.Fatal("a DENY-all network policy allowed")
	}
	get := func(path string) string {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if txt := get("/debug/authz"); !strings.Contains(txt, "tcp tcp. DENY denied: denied by DENY policy ns[db]-policy[no-tcp]-rule[0]; source 10.0.0.7:5555") {
		t.Errorf("/debug/authz:\n%s", txt)
	}
	var ds []rbac.Decision
	if err := json.Unmarshal([]byte(get("/debug/authz?format=json")), &ds); err != nil || len(ds) != 1 || ds[0].Policy != "ns[db]-policy[no-tcp]-rule[0]" || ds[0].Allowed {
		t.Errorf("/debug/authz?format=json: %v %+v", err, ds)
	}
	if st := get("/stats"); !strings.Contains(st, "tcp.rbac.denied: 1\n") || !strings.Contains(st, "tcp.rbac.policy.ns[db]-policy[no-tcp]-rule[0].denied: 1\n") {
		t.Errorf("/stats:\n%s", st)
	}
}
