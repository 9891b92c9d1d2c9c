package xdsgen_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	proxyrouter "github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

const connectYAML = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wild.example.com"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: tls, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-via-egress, namespace: default}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{port: 443, sniHosts: [api.example.com]}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-only, namespace: default}
spec:
  hosts: [vs-only.example.com]
  http: [{route: [{destination: {host: web}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  selector: {app: tcp-echo}
  ports: [{name: tcp, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo, namespace: default}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
---
apiVersion: v1
kind: Service
metadata: {name: private, namespace: other}
spec:
  selector: {app: private}
  ports: [{name: tcp, port: 7000}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: other}
spec:
  hosts: [hidden.example.com]
  exportTo: ["."]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`

// TestConnectRoutes: the outbound route table resolves a CONNECT
// authority as captured TCP to host:port is routed. The generated table
// (ValidateAll checked by generate) is compiled by the proxy's router and
// CONNECT requests are matched against it.
func TestConnectRoutes(t *testing.T) {
	type want struct {
		route    string
		clusters []string // one, or the weighted arms
		weights  []uint64
		status   int // direct response
	}
	allowAny := want{route: "allow_any_connect", clusters: []string{xdsgen.PassthroughCluster}}
	blocked := want{route: "block_all_connect", status: 502}
	cases := []struct {
		authority string
		allow     want // under ALLOW_ANY
		only      want // under REGISTRY_ONLY
	}{
		{authority: "secure.example.com:443", allow: want{route: "connect:secure.example.com:443", clusters: []string{"outbound|443||secure.example.com"}}},
		{authority: "a.wild.example.com:443", allow: want{route: "connect:*.wild.example.com:443", clusters: []string{"outbound|443||*.wild.example.com"}}},
		// The tls route for the SNI the client will send sends it to the egress gateway.
		{authority: "api.example.com:443", allow: want{route: "connect:api.example.com:443", clusters: []string{"outbound|443||istio-egressgateway.istio-system.svc.cluster.local"}}},
		{authority: "tcp-echo:9000", allow: want{route: "connect:tcp-echo.default.svc.cluster.local:9000",
			clusters: []string{"outbound|9000|v1|tcp-echo.default.svc.cluster.local", "outbound|9000|v2|tcp-echo.default.svc.cluster.local"}, weights: []uint64{80, 20}}},
		{authority: "tcp-echo.default.svc.cluster.local:9000", allow: want{route: "connect:tcp-echo.default.svc.cluster.local:9000",
			clusters: []string{"outbound|9000|v1|tcp-echo.default.svc.cluster.local", "outbound|9000|v2|tcp-echo.default.svc.cluster.local"}, weights: []uint64{80, 20}}},
		// An HTTP port: the tunnel is served as HTTP by the internal
		// listener with the outbound route table.
		{authority: "web:80", allow: want{route: "connect:web.default.svc.cluster.local:80", clusters: []string{xdsgen.ConnectHTTPCluster}}},
		// A port the service does not have, a host not in the registry,
		// a host exported to its own namespace only: the catch-all.
		{authority: "secure.example.com:8443", allow: allowAny, only: blocked},
		{authority: "unknown.example.com:443", allow: allowAny, only: blocked},
		{authority: "hidden.example.com:443", allow: allowAny, only: blocked},
		// A short name from another namespace is not an alias; the full
		// name is.
		{authority: "private:7000", allow: allowAny, only: blocked},
		{authority: "private.other:7000", allow: want{route: "connect:private.other.svc.cluster.local:7000", clusters: []string{"outbound|7000||private.other.svc.cluster.local"}}},
	}
	internal := false
	for _, mode := range []meshv1alpha1.MeshConfig_OutboundTrafficPolicy_Mode{meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY} {
		mesh := &meshv1alpha1.MeshConfig{OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: mode}}
		res := generateYAML(t, connectYAML, sidecar("client", nil), mesh)
		table := compileOutbound(t, res)
		for _, l := range res.Listeners {
			if l.Name == xdsgen.ConnectHTTPListener && l.GetInternalListener() != nil {
				internal = true
			}
		}
		for _, c := range cases {
			w := c.allow
			if mode == meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY && c.only.route != "" {
				w = c.only
			}
			req := &http.Request{Method: http.MethodConnect, Host: c.authority, Header: http.Header{}, RequestURI: c.authority, URL: &url.URL{Host: c.authority}}
			rte := table.Match(req)
			if rte == nil {
				t.Errorf("%v %s: no route", mode, c.authority)
				continue
			}
			if rte.Name != w.route {
				t.Errorf("%v %s: route %q, want %q", mode, c.authority, rte.Name, w.route)
				continue
			}
			checkConnectAction(t, mode.String()+" "+c.authority, rte, w.clusters, w.weights, w.status)
		}
		// A VirtualService host with no service is an HTTP host on port 80.
		vsOnly := &http.Request{Method: http.MethodConnect, Host: "vs-only.example.com:80", Header: http.Header{}, RequestURI: "vs-only.example.com:80", URL: &url.URL{Host: "vs-only.example.com:80"}}
		if rte := table.Match(vsOnly); rte == nil || rte.Action.Cluster != xdsgen.ConnectHTTPCluster {
			t.Errorf("%v: CONNECT to a VirtualService-only host matched %+v", mode, rte)
		}
		// A plain request never takes a CONNECT route.
		if !internal {
			t.Errorf("no internal listener %s", xdsgen.ConnectHTTPListener)
		}
		get := &http.Request{Method: http.MethodGet, Host: "tcp-echo:9000", Header: http.Header{}, RequestURI: "/", URL: &url.URL{Path: "/"}}
		if rte := table.Match(get); rte != nil && rte.Action.Connect {
			t.Errorf("GET matched CONNECT route %q", rte.Name)
		}
	}
}

func checkConnectAction(t *testing.T, what string, rte *proxyrouter.Route, clusters []string, weights []uint64, status int) {
	t.Helper()
	if status != 0 {
		if rte.Action.Kind != proxyrouter.DirectResponse || rte.Action.Status != status {
			t.Errorf("%s: action %+v, want direct response %d", what, rte.Action, status)
		}
		return
	}
	if !rte.Action.Connect {
		t.Errorf("%s: route %q does not terminate CONNECT", what, rte.Name)
	}
	var got []string
	var gotW []uint64
	if rte.Action.Cluster != "" {
		got = []string{rte.Action.Cluster}
	}
	for _, wc := range rte.Action.Weighted {
		got, gotW = append(got, wc.Name), append(gotW, wc.Weight)
	}
	if !slices.Equal(got, clusters) || !slices.Equal(gotW, weights) {
		t.Errorf("%s: clusters %v weights %v, want %v %v", what, got, gotW, clusters, weights)
	}
}

func compileOutbound(t *testing.T, res *xdsgen.Resources) *proxyrouter.Table {
	t.Helper()
	var rc *route.RouteConfiguration
	for _, r := range res.Routes {
		if r.Name == xdsgen.OutboundRouteName {
			rc = r
		}
	}
	if rc == nil {
		t.Fatal("no outbound route table")
	}
	table, err := proxyrouter.Compile(rc)
	if err != nil {
		t.Fatalf("the proxy's router NACKs the outbound table: %v", err)
	}
	return table
}

// TestConnectSidecarScope: a Sidecar's egress hosts decide which
// authorities resolve; the rest meet the outbound traffic policy.
func TestConnectSidecarScope(t *testing.T) {
	yaml := connectYAML + `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./secure.example.com"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`
	table := compileOutbound(t, generateYAML(t, yaml, sidecar("client", nil), nil))
	for authority, wantRoute := range map[string]string{
		"secure.example.com:443": "connect:secure.example.com:443",
		"tcp-echo:9000":          "block_all_connect",
		"a.wild.example.com:443": "block_all_connect",
	} {
		req := &http.Request{Method: http.MethodConnect, Host: authority, Header: http.Header{}, RequestURI: authority, URL: &url.URL{Host: authority}}
		if rte := table.Match(req); rte == nil || rte.Name != wantRoute {
			t.Errorf("%s: matched %+v, want route %s", authority, rte, wantRoute)
		}
	}
}
