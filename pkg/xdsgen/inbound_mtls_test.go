package xdsgen_test

import (
	"fmt"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// chainView is one inbound filter chain: its match, whether it terminates
// mTLS, and its terminal filter.
func chainView(t *testing.T, fc *listener.FilterChain) string {
	t.Helper()
	m := fc.GetFilterChainMatch()
	s := m.GetTransportProtocol()
	if len(m.GetApplicationProtocols()) > 0 {
		s += "[" + strings.Join(m.GetApplicationProtocols(), ",") + "]"
	}
	if fc.TransportSocket != nil {
		s += "+mtls"
	}
	switch fc.Filters[len(fc.Filters)-1].Name {
	case xdsgen.TCPProxyFilter:
		s += ":tcp"
	case xdsgen.HTTPConnectionManagerFilter:
		s += ":http"
	}
	return s
}

func listenerNamed(t *testing.T, res *xdsgen.Resources, name string) *listener.Listener {
	t.Helper()
	for _, l := range res.Listeners {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no listener %s", name)
	return nil
}

const mtlsALPNs = "[istio,istio-peer-exchange,istio-http/1.0,istio-http/1.1,istio-h2]"

// The inbound chains of an HTTP (20001) and a TCP (20002) port per
// effective PeerAuthentication mode, as Istio's getFilterChainMatchOptions.
func TestInboundChainsPerMode(t *testing.T) {
	pairs := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}
	permissiveHTTP := []string{"tls" + mtlsALPNs + "+mtls:http", "raw_buffer:http"}
	permissiveTCP := []string{"tls" + mtlsALPNs + "+mtls:tcp", "tls:tcp", "raw_buffer:tcp"}
	cases := []struct {
		name      string
		policies  string
		http, tcp []string
	}{
		{name: "no policy: PERMISSIVE", http: permissiveHTTP, tcp: permissiveTCP},
		{name: "mesh STRICT", policies: pa("istio-system", "default", "{mtls: {mode: STRICT}}"),
			http: []string{"tls+mtls:http"}, tcp: []string{"tls+mtls:tcp"}},
		{name: "namespace DISABLE", policies: pa("default", "default", "{mtls: {mode: DISABLE}}"),
			http: []string{"raw_buffer:http"}, tcp: []string{"raw_buffer:tcp"}},
		{name: "workload STRICT over namespace DISABLE",
			policies: pa("default", "default", "{mtls: {mode: DISABLE}}") + pa("default", "db", "{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}}"),
			http:     []string{"tls+mtls:http"}, tcp: []string{"tls+mtls:tcp"}},
		{name: "another workload's policy", policies: pa("default", "web", "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}"),
			http: permissiveHTTP, tcp: permissiveTCP},
		{name: "portLevelMtls by workload port",
			policies: pa("default", "db", `{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {"20002": {mode: PERMISSIVE}}}`),
			http:     []string{"tls+mtls:http"}, tcp: permissiveTCP},
		{name: "portLevelMtls on the service port does nothing",
			policies: pa("default", "db", `{selector: {matchLabels: {app: db}}, mtls: {mode: STRICT}, portLevelMtls: {"9000": {mode: DISABLE}}}`),
			http:     []string{"tls+mtls:http"}, tcp: []string{"tls+mtls:tcp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := generateYAML(t, twoPortWorkload+c.policies, dbSidecar(pairs...), nil)
			for port, want := range map[string][]string{"virtualInbound_20001": c.http, "virtualInbound_20002": c.tcp} {
				l := listenerNamed(t, res, port)
				var got []string
				for _, fc := range l.FilterChains {
					got = append(got, chainView(t, fc))
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s chains %v, want %v", port, got, want)
				}
				if len(l.ListenerFilters) != 1 || l.ListenerFilters[0].Name != xdsgen.TLSInspectorFilter {
					t.Errorf("%s listener filters %v, want the tls_inspector", port, l.ListenerFilters)
				}
			}
		})
	}
}

func pa(ns, name, spec string) string {
	return fmt.Sprintf("---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %s, namespace: %s}\nspec: %s\n", name, ns, spec)
}

// The mTLS chain's server context: workload certificate, client
// certificate required, peers in the trust domain or an alias (URI
// prefix), Istio's ALPN per protocol.
func TestInboundMTLSContext(t *testing.T) {
	pairs := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}
	mesh := &meshv1alpha1.MeshConfig{TrustDomain: "example.org", TrustDomainAliases: []string{"old.example.org", "example.org", ""}}
	res := generateYAML(t, twoPortWorkload+pa("istio-system", "default", "{mtls: {mode: STRICT}}"), dbSidecar(pairs...), mesh)
	for port, alpn := range map[string]string{"virtualInbound_20001": "h2,http/1.1", "virtualInbound_20002": "istio-peer-exchange,h2,http/1.1"} {
		fc := listenerNamed(t, res, port).FilterChains[0]
		var ctx tlsv3.DownstreamTlsContext
		if err := fc.TransportSocket.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatal(err)
		}
		common := ctx.CommonTlsContext
		if !ctx.GetRequireClientCertificate().GetValue() || common.TlsCertificateSdsSecretConfigs[0].Name != "default" ||
			common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != "ROOTCA" {
			t.Errorf("%s: context %v", port, &ctx)
		}
		if got := strings.Join(common.AlpnProtocols, ","); got != alpn {
			t.Errorf("%s: ALPN %s, want %s", port, got, alpn)
		}
		var sans []string
		for _, m := range common.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
			if m.SanType != tlsv3.SubjectAltNameMatcher_URI {
				t.Errorf("%s: SAN type %v", port, m.SanType)
			}
			sans = append(sans, m.Matcher.GetPrefix())
		}
		if got := strings.Join(sans, " "); got != "spiffe://example.org/ spiffe://old.example.org/" {
			t.Errorf("%s: SAN prefixes %q", port, got)
		}
	}
}

func managerOf(t *testing.T, fc *listener.FilterChain) *hcm.HttpConnectionManager {
	t.Helper()
	var m hcm.HttpConnectionManager
	if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// XFCC as Istio sets it: APPEND_FORWARD with subject, URI and DNS on every
// sidecar inbound chain, SANITIZE_SET with the certificate too on gateways,
// nothing on the outbound listener; meshConfig overrides both.
func TestXFCC(t *testing.T) {
	pairs := []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}}
	res := generateYAML(t, twoPortWorkload, dbSidecar(pairs...), nil)
	for _, fc := range listenerNamed(t, res, "virtualInbound_20001").FilterChains {
		m := managerOf(t, fc)
		s := m.SetCurrentClientCertDetails
		if m.ForwardClientCertDetails != hcm.HttpConnectionManager_APPEND_FORWARD || !s.GetSubject().GetValue() || !s.Uri || !s.Dns || s.Cert || s.Chain {
			t.Errorf("inbound chain %s: %v %v", chainView(t, fc), m.ForwardClientCertDetails, s)
		}
	}
	out := managerOf(t, listenerNamed(t, res, xdsgen.OutboundListenerName).FilterChains[0])
	if out.ForwardClientCertDetails != hcm.HttpConnectionManager_SANITIZE || out.SetCurrentClientCertDetails != nil {
		t.Errorf("outbound: %v %v", out.ForwardClientCertDetails, out.SetCurrentClientCertDetails)
	}
	mesh := &meshv1alpha1.MeshConfig{DefaultConfig: &meshv1alpha1.ProxyConfig{ProxyHeaders: &meshv1alpha1.ProxyConfig_ProxyHeaders{
		ForwardedClientCert: meshv1alpha1.ForwardClientCertDetails_SANITIZE}}}
	res = generateYAML(t, twoPortWorkload, dbSidecar(pairs...), mesh)
	if m := managerOf(t, listenerNamed(t, res, "virtualInbound_20001").FilterChains[0]); m.ForwardClientCertDetails != hcm.HttpConnectionManager_SANITIZE {
		t.Errorf("proxyHeaders.forwardedClientCert SANITIZE: %v", m.ForwardClientCertDetails)
	}

	const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
`
	for _, c := range []struct {
		topology *meshv1alpha1.Topology
		want     hcm.HttpConnectionManager_ForwardClientCertDetails
		details  bool
	}{
		{want: hcm.HttpConnectionManager_SANITIZE_SET, details: true},
		{topology: &meshv1alpha1.Topology{ForwardClientCertDetails: meshv1alpha1.ForwardClientCertDetails_FORWARD_ONLY},
			want: hcm.HttpConnectionManager_FORWARD_ONLY},
	} {
		mesh := &meshv1alpha1.MeshConfig{DefaultConfig: &meshv1alpha1.ProxyConfig{GatewayTopology: c.topology}}
		res := generateYAML(t, gw, router, mesh)
		m := managerOf(t, res.Listeners[0].FilterChains[0])
		s := m.SetCurrentClientCertDetails
		if m.ForwardClientCertDetails != c.want || (s != nil) != c.details || (s != nil && (!s.Cert || !s.Uri || !s.Dns || !s.GetSubject().GetValue())) {
			t.Errorf("gateway: %v %v, want %v", m.ForwardClientCertDetails, s, c.want)
		}
	}
}

// portLevelMtls names the container port (the Service's targetPort, as
// Istio's pages do for pods); the sidecar inbound port standing in for it
// in local mode takes that mode. A key naming the inbound port itself wins.
func TestInboundPortLevelByTargetPort(t *testing.T) {
	const httpbin = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin, namespace: bar}
spec: {address: 127.0.0.1, labels: {app: httpbin}, ports: {http: 20001}}
`
	proxy := model.Proxy{Type: model.Sidecar, Name: "httpbin", Namespace: "bar", Labels: map[string]string{"app": "httpbin"},
		IPs: []string{"127.0.0.1"}, Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}}}
	for _, c := range []struct{ ports, want string }{
		{`{"80": {mode: DISABLE}}`, "raw_buffer:http"},
		{`{"80": {mode: DISABLE}, "20001": {mode: PERMISSIVE}}`, "tls" + mtlsALPNs + "+mtls:http raw_buffer:http"},
		{`{"8000": {mode: DISABLE}}`, "tls+mtls:http"},
	} {
		res := generateYAML(t, httpbin+pa("bar", "httpbin", "{selector: {matchLabels: {app: httpbin}}, mtls: {mode: STRICT}, portLevelMtls: "+c.ports+"}"), proxy, nil)
		var got []string
		for _, fc := range listenerNamed(t, res, "virtualInbound_20001").FilterChains {
			got = append(got, chainView(t, fc))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("portLevelMtls %s: chains %v, want %s", c.ports, got, c.want)
		}
	}
}
