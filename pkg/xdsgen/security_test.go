package xdsgen_test

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const securityPolicies = `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-shop, namespace: istio-system}
spec:
  rules: [{from: [{source: {namespaces: [shop]}}]}]
---
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  jwtRules:
  - issuer: https://issuer.example
    jwks: '{"keys":[]}'
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
`

func httpFilterNames(t *testing.T, f *listener.Filter) ([]string, *hcm.HttpConnectionManager) {
	t.Helper()
	m := &hcm.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range m.HttpFilters {
		names = append(names, h.Name)
	}
	return names, m
}

func rbacAction(t *testing.T, h *hcm.HttpFilter) rbacpb.RBAC_Action {
	t.Helper()
	r := &rbachttp.RBAC{}
	if err := h.GetTypedConfig().UnmarshalTo(r); err != nil {
		t.Fatal(err)
	}
	return r.GetRules().GetAction()
}

// TestSecurityFiltersInListeners: a sidecar's inbound HTTP connection
// managers start with jwt_authn and the rbac filters (DENY before ALLOW)
// in Istio's order with the router last; its inbound TCP chain has the
// network rbac filters before tcp_proxy; its outbound listener has none;
// a gateway's HTTP and TCP chains get the policies selecting it (the
// root namespace's, mesh-wide). Everything passes ValidateAll.
func TestSecurityFiltersInListeners(t *testing.T) {
	yaml := twoPortWorkload + securityPolicies
	res := generateYAML(t, yaml, dbSidecar(model.InboundPort{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"},
		model.InboundPort{Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}), nil)
	seen := 0
	for _, l := range res.Listeners {
		f := l.FilterChains[0].Filters
		switch l.Name {
		case xdsgen.InboundListenerName + "_20001":
			names, m := httpFilterNames(t, f[0])
			want := "envoy.filters.http.jwt_authn,envoy.filters.http.rbac,envoy.filters.http.rbac,envoy.filters.http.fault,envoy.filters.http.cors,istio.stats,envoy.filters.http.router"
			if got := strings.Join(names, ","); got != want {
				t.Errorf("inbound HTTP filters %s, want %s", got, want)
			}
			if rbacAction(t, m.HttpFilters[1]) != rbacpb.RBAC_DENY || rbacAction(t, m.HttpFilters[2]) != rbacpb.RBAC_ALLOW {
				t.Error("rbac filters are not DENY then ALLOW")
			}
			jwt := &jwtpb.JwtAuthentication{}
			if err := m.HttpFilters[0].GetTypedConfig().UnmarshalTo(jwt); err != nil {
				t.Fatal(err)
			}
			p := jwt.Providers["origins-0"]
			if p.GetIssuer() != "https://issuer.example" || p.GetLocalJwks().GetInlineString() != `{"keys":[]}` ||
				p.GetFromHeaders()[0].GetValuePrefix() != "Bearer " || p.GetPayloadInMetadata() != "payload" || p.GetClearRouteCache() {
				t.Errorf("jwt provider %v", p)
			}
			seen++
		case xdsgen.InboundListenerName + "_20002":
			var names []string
			for _, x := range f {
				names = append(names, x.Name)
			}
			if got := strings.Join(names, ","); got != "envoy.filters.network.rbac,envoy.filters.network.rbac,istio.stats,envoy.filters.network.tcp_proxy" {
				t.Errorf("inbound TCP filters %s", got)
			}
			r := &rbactcp.RBAC{}
			if err := f[0].GetTypedConfig().UnmarshalTo(r); err != nil {
				t.Fatal(err)
			}
			// The DENY rule uses only paths (HTTP only): on TCP it
			// keeps its other conditions, so it denies every connection,
			// as Istio (and its validation's warning) says.
			if r.StatPrefix != "tcp." || r.GetRules().GetAction() != rbacpb.RBAC_DENY || len(r.GetRules().GetPolicies()) != 1 {
				t.Errorf("TCP deny filter %v", r)
			}
			seen++
		case xdsgen.OutboundListenerName:
			names, _ := httpFilterNames(t, f[0])
			if strings.Contains(strings.Join(names, ","), "rbac") || strings.Contains(strings.Join(names, ","), "jwt") {
				t.Errorf("outbound listener has security filters: %v", names)
			}
			seen++
		}
	}
	if seen != 3 {
		t.Fatalf("saw %d of the 3 listeners", seen)
	}

	gw := generateYAML(t, twoPortWorkload+securityPolicies+tcpRoute, model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}, nil)
	var httpChains, tcpChains int
	for _, l := range gw.Listeners {
		for _, c := range l.FilterChains {
			if c.Filters[0].Name == xdsgen.HTTPConnectionManagerFilter {
				httpChains++
				names, _ := httpFilterNames(t, c.Filters[0])
				if names[0] != "envoy.filters.http.rbac" || len(names) != 5 {
					t.Errorf("gateway HTTP filters %v: want the root namespace's ALLOW rbac first (no jwt: the RequestAuthentication selects app=db)", names)
				}
			} else if c.Filters[0].Name != "envoy.filters.network.rbac" {
				t.Errorf("gateway TCP chain starts with %s", c.Filters[0].Name)
			} else {
				tcpChains++
			}
		}
	}
	if httpChains != 1 || tcpChains != 1 {
		t.Errorf("gateway: %d HTTP and %d TCP chains, want 1 and 1", httpChains, tcpChains)
	}
}

const tcpRoute = `
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp: [{route: [{destination: {host: db.default.svc.cluster.local, port: {number: 9000}}}]}]
`
