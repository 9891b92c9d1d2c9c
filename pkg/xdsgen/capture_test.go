package xdsgen_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// capturedClient is the captured sidecar of testdata/capture.yaml's
// client workload (10.1.0.5).
func capturedClient() model.Proxy {
	return model.Proxy{Type: model.Sidecar, Name: "client-1", Namespace: "default", Labels: map[string]string{"app": "client"},
		IPs: []string{"10.1.0.5"}, InterceptionMode: model.InterceptionRedirect}
}

func captureYAML(t *testing.T, extra string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "capture.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + extra
}

// tcpCluster is the cluster of a chain ending in tcp_proxy.
func tcpCluster(t *testing.T, fc *listener.FilterChain) string {
	t.Helper()
	var tp tcpproxy.TcpProxy
	if err := fc.Filters[len(fc.Filters)-1].GetTypedConfig().UnmarshalTo(&tp); err != nil {
		t.Fatalf("chain %s: %v", fc.Name, err)
	}
	return tp.GetCluster()
}

// REGISTRY_ONLY: what no service listener takes is black-holed, on the
// virtual outbound listener and on an HTTP port's fallthrough chain.
func TestCaptureRegistryOnly(t *testing.T) {
	mesh := &meshv1alpha1.MeshConfig{OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{
		Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}}
	res := generateYAML(t, captureYAML(t, ""), capturedClient(), mesh)
	vo := listenerNamed(t, res, xdsgen.OutboundListenerName)
	if got := tcpCluster(t, vo.FilterChains[len(vo.FilterChains)-1]); got != xdsgen.BlackHoleCluster {
		t.Errorf("virtualOutbound catch-all goes to %s, want BlackHoleCluster", got)
	}
	if got := tcpCluster(t, listenerNamed(t, res, "0.0.0.0_9080").DefaultFilterChain); got != xdsgen.BlackHoleCluster {
		t.Errorf("0.0.0.0_9080 fallthrough goes to %s, want BlackHoleCluster", got)
	}
	res = generateYAML(t, captureYAML(t, ""), capturedClient(), nil)
	if got := tcpCluster(t, listenerNamed(t, res, "0.0.0.0_9080").DefaultFilterChain); got != xdsgen.PassthroughCluster {
		t.Errorf("ALLOW_ANY: 0.0.0.0_9080 fallthrough goes to %s, want PassthroughCluster", got)
	}
}

// One Generator serves a local-mode and a captured sidecar of the same
// namespace: each gets its own PassthroughCluster (the local one takes the
// destination from :authority, the captured one from the connection), so
// the shared cluster list is keyed by capture too.
func TestCaptureSharedGeneratorKeepsPassthroughApart(t *testing.T) {
	push := sharingPush(t, captureYAML(t, ""))
	gen := xdsgen.NewGenerator(push)
	local := proxyIn("local", "default", "", map[string]string{"app": "other"})
	captured := capturedClient()
	captured.ID = captured.NodeID()
	for _, p := range []*model.Proxy{local, &captured, local} {
		res := genFor(t, gen, p)
		c := findCluster(res, xdsgen.PassthroughCluster)
		if header := c.GetOriginalDstLbConfig().GetUseHttpHeader(); header == p.Captured() {
			t.Errorf("%s (captured %v): PassthroughCluster use_http_header %v", p.Name, p.Captured(), header)
		}
		if hasInbound := findCluster(res, xdsgen.InboundPassthroughCluster) != nil; hasInbound != p.Captured() {
			t.Errorf("%s: InboundPassthroughCluster present %v", p.Name, hasInbound)
		}
	}
}

// A STRICT workload's passthrough chains take mTLS only; with
// inboundTrafficPolicy LOCALHOST the app is 127.0.0.1:port (a static
// cluster), by default the original destination (ORIGINAL_DST from
// 127.0.0.6).
func TestCaptureInboundPolicy(t *testing.T) {
	res := generateYAML(t, captureYAML(t, pa("default", "default", "{mtls: {mode: STRICT}}")), capturedClient(), nil)
	vi := listenerNamed(t, res, xdsgen.InboundListenerName)
	var passthrough, port8080 []string
	for _, fc := range vi.FilterChains {
		switch fc.GetFilterChainMatch().GetDestinationPort().GetValue() {
		case 0:
			passthrough = append(passthrough, chainView(t, fc))
		case 8080:
			port8080 = append(port8080, chainView(t, fc))
		}
	}
	if want := []string{"tls+mtls:tcp"}; !slices.Equal(passthrough, want) {
		t.Errorf("STRICT passthrough chains %v, want %v", passthrough, want)
	}
	if want := []string{"tls+mtls:http"}; !slices.Equal(port8080, want) {
		t.Errorf("STRICT port 8080 chains %v, want %v", port8080, want)
	}
	if c := clusterNamed(t, res, "inbound|8080||"); c.GetType().String() != "ORIGINAL_DST" || c.GetUpstreamBindConfig().GetSourceAddress().GetAddress() != "127.0.0.6" {
		t.Errorf("PASSTHROUGH inbound cluster: %v", c)
	}
	local := &meshv1alpha1.MeshConfig{InboundTrafficPolicy: &meshv1alpha1.MeshConfig_InboundTrafficPolicy{
		Mode: meshv1alpha1.MeshConfig_InboundTrafficPolicy_LOCALHOST}}
	res = generateYAML(t, captureYAML(t, ""), capturedClient(), local)
	c := clusterNamed(t, res, "inbound|8080||")
	ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if c.GetType().String() != "STATIC" || ep.GetAddress() != "127.0.0.1" || ep.GetPortValue() != 8080 {
		t.Errorf("LOCALHOST inbound cluster: %v", c)
	}
}

// A plain TCP service without an address on an HTTP port is merged into
// 0.0.0.0_P as the chain for what is not HTTP; a service whose address is a
// CIDR range is served on 0.0.0.0_P by a chain matching that range
// (prefix_ranges), the passthrough chain taking the rest.
func TestCaptureTCPOnHTTPPortAndCIDR(t *testing.T) {
	extra := `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.internal]
  ports: [{number: 9080, name: tcp-legacy, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.3.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range, namespace: default}
spec:
  hosts: [range.internal]
  addresses: [240.1.0.0/16]
  ports: [{number: 7000, name: tcp-range, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.3.0.2}]
`
	res := generateYAML(t, captureYAML(t, extra), capturedClient(), nil)
	l := listenerNamed(t, res, "0.0.0.0_9080")
	if got := tcpCluster(t, l.DefaultFilterChain); got != "outbound|9080||legacy.internal" {
		t.Errorf("0.0.0.0_9080 non-HTTP chain goes to %s", got)
	}
	l = listenerNamed(t, res, "0.0.0.0_7000")
	if len(l.FilterChains) != 1 || tcpCluster(t, l.FilterChains[0]) != "outbound|7000||range.internal" {
		t.Fatalf("0.0.0.0_7000 chains %v", l.FilterChains)
	}
	if r := l.FilterChains[0].GetFilterChainMatch().GetPrefixRanges(); len(r) != 1 || r[0].AddressPrefix != "240.1.0.0" || r[0].GetPrefixLen().GetValue() != 16 {
		t.Errorf("CIDR chain matches %v, want 240.1.0.0/16", r)
	}
	if got := tcpCluster(t, l.DefaultFilterChain); got != xdsgen.PassthroughCluster {
		t.Errorf("0.0.0.0_7000 default goes to %s", got)
	}
	if err := compileForProxy(res); err != nil {
		t.Errorf("the proxy rejects it: %v", err)
	}
}

// The proxy accepts a captured sidecar's whole config: what is generated
// here is what sluice's data plane (pkg/proxy/dataplane) compiles.
func TestCaptureProxyAccepts(t *testing.T) {
	for name, mesh := range map[string]*meshv1alpha1.MeshConfig{
		"default": nil,
		"localhost": {InboundTrafficPolicy: &meshv1alpha1.MeshConfig_InboundTrafficPolicy{
			Mode: meshv1alpha1.MeshConfig_InboundTrafficPolicy_LOCALHOST}},
	} {
		res := generateYAML(t, captureYAML(t, pa("default", "default", "{mtls: {mode: PERMISSIVE}}")), capturedClient(), mesh)
		if err := compileForProxy(res); err != nil {
			t.Errorf("%s: the proxy rejects the generated capture config: %v", name, err)
		}
	}
}

// compileForProxy compiles res with sluice's data plane, as the proxy
// would on receiving it.
func compileForProxy(res *xdsgen.Resources) error {
	items := res.ByType()
	_, _, err := dataplane.Compile(dataplane.CompileOptions{Resources: xdsclient.Resources{Items: items}, Stats: dataplane.NewStatsStore(), Identity: unusedIdentity{}})
	return err
}

// unusedIdentity stands in for the proxy's mesh identity where config is
// only compiled, never served.
type unusedIdentity struct{}

func (unusedIdentity) Certificate() (*tls.Certificate, error) {
	return nil, errors.New("no certificate in this test")
}
func (unusedIdentity) VerifyPeer(rawCerts [][]byte, ids []string) error {
	return errors.New("no peers in this test")
}

// A Sidecar ingress listener with captureMode NONE keeps a bound listener
// of its own on a captured sidecar; the others are chains of
// virtualInbound matching their port.
func TestCaptureIngressCaptureModeNone(t *testing.T) {
	sidecarDoc := `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  ingress:
  - {port: {number: 8080, protocol: HTTP, name: http}, defaultEndpoint: 127.0.0.1:8080}
  - {port: {number: 9001, protocol: TCP, name: tcp}, defaultEndpoint: 127.0.0.1:9001, captureMode: NONE, bind: 10.1.0.5}
`
	res := generateYAML(t, captureYAML(t, sidecarDoc), capturedClient(), nil)
	ports := map[uint32]bool{}
	for _, fc := range listenerNamed(t, res, xdsgen.InboundListenerName).FilterChains {
		ports[fc.GetFilterChainMatch().GetDestinationPort().GetValue()] = true
	}
	if !ports[8080] || ports[9001] {
		t.Errorf("virtualInbound chains for ports %v, want 8080 and not 9001", ports)
	}
	l := listenerNamed(t, res, xdsgen.InboundListenerName+"_9001")
	if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "10.1.0.5" || sa.GetPortValue() != 9001 || l.GetBindToPort() != nil {
		t.Errorf("captureMode NONE listener %s at %v, bind_to_port %v", l.Name, sa, l.GetBindToPort())
	}
	for _, l := range res.Listeners {
		if l.Name == xdsgen.InboundListenerName+"_8080" {
			t.Errorf("port 8080 has a listener of its own")
		}
	}
}

// Two HTTP services with one address: one VIP_P listener (the first's),
// the other reported, and the config still valid (no listener twice).
func TestCaptureSharedVIP(t *testing.T) {
	extra := `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: twin-a, namespace: default}
spec:
  hosts: [a.twin]
  addresses: [240.0.0.9]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.4.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: twin-b, namespace: default}
spec:
  hosts: [b.twin]
  addresses: [240.0.0.9]
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.4.0.2}]
`
	res := generateYAML(t, captureYAML(t, extra), capturedClient(), nil)
	n := 0
	for _, l := range res.Listeners {
		if l.Name == "240.0.0.9_8000" {
			n++
		}
	}
	if n != 1 || !slices.ContainsFunc(res.Conflicts, func(c string) bool { return strings.Contains(c, "240.0.0.9_8000") }) {
		t.Errorf("%d listeners 240.0.0.9_8000, conflicts %q", n, res.Conflicts)
	}
	if err := compileForProxy(res); err != nil {
		t.Errorf("the proxy rejects it: %v", err)
	}
}
