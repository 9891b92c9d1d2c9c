package xdsgen_test

import (
	"fmt"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// autoMTLSMesh: reviews has two sidecar workloads and one without; the
// DestinationRules set tls on the other services.
const autoMTLSMesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.11, labels: {app: reviews, security.istio.io/tlsMode: istio}, serviceAccount: reviews, ports: {http: 20001}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-legacy, namespace: default}
spec: {address: 127.0.0.12, labels: {app: reviews}, ports: {http: 20002}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.20, labels: {security.istio.io/tlsMode: istio}}]
`

func sidecarFor(ns string, labels map[string]string) model.Proxy {
	return model.Proxy{Type: model.Sidecar, Name: "client", Namespace: ns, Labels: labels, IPs: []string{"127.0.0.1"},
		OutboundAddress: "127.0.0.1:15001"}
}

func clusterNamed(t *testing.T, res *xdsgen.Resources, name string) *cluster.Cluster {
	t.Helper()
	for _, c := range res.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %s", name)
	return nil
}

// Auto mTLS on a cluster whose DestinationRule sets no tls: Istio's two
// transport socket matches, and tlsMode metadata on the sidecar endpoint
// only.
func TestAutoMTLSClusterAndEndpoints(t *testing.T) {
	res := generateYAML(t, autoMTLSMesh, sidecarFor("default", nil), nil)
	c := clusterNamed(t, res, "outbound|9080||reviews.default.svc.cluster.local")
	if c.TransportSocket != nil || len(c.TransportSocketMatches) != 2 {
		t.Fatalf("transport socket %v, matches %v: want two matches", c.TransportSocket, c.TransportSocketMatches)
	}
	m0, m1 := c.TransportSocketMatches[0], c.TransportSocketMatches[1]
	if m0.Name != "tlsMode-istio" || m0.Match.Fields["tlsMode"].GetStringValue() != "istio" || len(m0.Match.Fields) != 1 {
		t.Errorf("first match %v", m0)
	}
	if m1.Name != "tlsMode-disabled" || len(m1.Match.GetFields()) != 0 || m1.TransportSocket.Name != xdsgen.RawBufferTransportSocket {
		t.Errorf("second match %v", m1)
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := m0.TransportSocket.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Sni != "outbound_.9080_._.reviews.default.svc.cluster.local" ||
		// An HTTP/1.1 port: what Istio's istio.alpn filter sends.
		strings.Join(ctx.CommonTlsContext.AlpnProtocols, ",") != "istio-http/1.1,istio,http/1.1" {
		t.Errorf("SNI %q ALPN %v", ctx.Sni, ctx.CommonTlsContext.AlpnProtocols)
	}
	cvc := ctx.CommonTlsContext.GetCombinedValidationContext()
	if cvc.GetValidationContextSdsSecretConfig().GetName() != "ROOTCA" || ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].Name != "default" {
		t.Errorf("SDS names: %v", ctx.CommonTlsContext)
	}
	sans := cvc.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
	if len(sans) != 1 || sans[0].Matcher.GetExact() != "spiffe://cluster.local/ns/default/sa/reviews" || sans[0].SanType != tlsv3.SubjectAltNameMatcher_URI {
		t.Errorf("server SANs %v, want the sidecar workload's SPIFFE ID", sans)
	}
	marked := map[string]string{}
	for _, cla := range res.Endpoints {
		if cla.ClusterName != c.Name {
			continue
		}
		for _, loc := range cla.Endpoints {
			for _, ep := range loc.LbEndpoints {
				addr := ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
				marked[addr] = ep.GetMetadata().GetFilterMetadata()[xdsgen.TransportSocketMatchKey].GetFields()["tlsMode"].GetStringValue()
			}
		}
	}
	if len(marked) != 2 || marked["127.0.0.11"] != "istio" || marked["127.0.0.12"] != "" {
		t.Errorf("endpoint tlsMode metadata %v: want istio on the sidecar workload only", marked)
	}
	ext := clusterNamed(t, res, "outbound|80||api.example.com")
	if ext.TransportSocket != nil || len(ext.TransportSocketMatches) != 0 {
		t.Errorf("MESH_EXTERNAL service got auto mTLS: %v %v", ext.TransportSocket, ext.TransportSocketMatches)
	}
}

// What turns auto mTLS off, as Istio's buildUpstreamTLSSettings and
// BestEffortInferServiceMTLSMode: an explicit DestinationRule tls (which
// then wins as a plain transport socket), enableAutoMtls false, the
// service namespace's PeerAuthentication DISABLE.
func TestAutoMTLSOff(t *testing.T) {
	const name = "outbound|9080||reviews.default.svc.cluster.local"
	dr := func(tls string) string {
		return "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  trafficPolicy: {tls: " + tls + "}\n"
	}
	cases := []struct {
		name    string
		extra   string
		mesh    *meshv1alpha1.MeshConfig
		socket  bool // a plain transport_socket
		matches bool
	}{
		{name: "no DestinationRule", matches: true},
		{name: "DestinationRule DISABLE", extra: dr("{mode: DISABLE}")},
		{name: "DestinationRule SIMPLE", extra: dr("{mode: SIMPLE}"), socket: true},
		{name: "DestinationRule ISTIO_MUTUAL", extra: dr("{mode: ISTIO_MUTUAL}"), socket: true},
		{name: "DestinationRule without tls keeps auto mTLS",
			extra: "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec: {host: reviews, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n", matches: true},
		{name: "enableAutoMtls false", mesh: &meshv1alpha1.MeshConfig{EnableAutoMtls: wrapperspb.Bool(false)}},
		{name: "enableAutoMtls true", mesh: &meshv1alpha1.MeshConfig{EnableAutoMtls: wrapperspb.Bool(true)}, matches: true},
		{name: "service namespace DISABLE",
			extra: "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: DISABLE}}\n"},
		{name: "mesh DISABLE",
			extra: "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: DISABLE}}\n"},
		{name: "service namespace STRICT",
			extra: "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n", matches: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := generateYAML(t, autoMTLSMesh+c.extra, sidecarFor("default", nil), c.mesh)
			cl := clusterNamed(t, res, name)
			if (cl.TransportSocket != nil) != c.socket || (len(cl.TransportSocketMatches) > 0) != c.matches {
				t.Fatalf("transport socket %v, matches %d; want socket %v, matches %v", cl.TransportSocket, len(cl.TransportSocketMatches), c.socket, c.matches)
			}
		})
	}
}

// A passthrough (ORIGINAL_DST) cluster gets ISTIO_MUTUAL as its one
// transport socket only when every endpoint has a sidecar, as Istio.
func TestAutoMTLSPassthrough(t *testing.T) {
	for _, c := range []struct {
		name, legacyLabels string
		socket             bool
	}{
		{name: "one endpoint without a sidecar", legacyLabels: "{app: reviews}"},
		{name: "every endpoint with a sidecar", legacyLabels: "{app: reviews, security.istio.io/tlsMode: istio}", socket: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := strings.Replace(autoMTLSMesh, "labels: {app: reviews}, ports: {http: 20002}", "labels: "+c.legacyLabels+", ports: {http: 20002}", 1) +
				"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec: {host: reviews, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}\n"
			res := generateYAML(t, yaml, sidecarFor("default", nil), nil)
			cl := clusterNamed(t, res, "outbound|9080||reviews.default.svc.cluster.local")
			if cl.GetType() != cluster.Cluster_ORIGINAL_DST || len(cl.TransportSocketMatches) != 0 || (cl.TransportSocket != nil) != c.socket {
				t.Fatalf("type %v socket %v matches %d; want socket %v", cl.GetType(), cl.TransportSocket, len(cl.TransportSocketMatches), c.socket)
			}
		})
	}
}

// endpointTLSModes maps each endpoint address of a cluster to its tlsMode
// metadata ("" when absent).
func endpointTLSModes(res *xdsgen.Resources, clusterName string) map[string]string {
	out := map[string]string{}
	for _, cla := range res.Endpoints {
		if cla.ClusterName != clusterName {
			continue
		}
		for _, loc := range cla.Endpoints {
			for _, ep := range loc.LbEndpoints {
				addr := ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
				out[addr] = ep.GetMetadata().GetFilterMetadata()[xdsgen.TransportSocketMatchKey].GetFields()["tlsMode"].GetStringValue()
			}
		}
	}
	return out
}

// Istio's EDS mtlsChecker: a sidecar endpoint whose own PeerAuthentication
// is DISABLE for its port (by endpoint port or the service targetPort)
// loses the tlsMode metadata, so clients send it plaintext; a
// DestinationRule tls mode decides instead when it sets one.
func TestAutoMTLSEndpointPeerAuthentication(t *testing.T) {
	const svc = `apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-a, namespace: bar}
spec: {address: 127.0.0.11, labels: {app: httpbin, v: a, security.istio.io/tlsMode: istio}, ports: {http: 20001}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-b, namespace: bar}
spec: {address: 127.0.0.12, labels: {app: httpbin, v: b, security.istio.io/tlsMode: istio}, ports: {http: 20002}}
`
	const name = "outbound|8000||httpbin.bar.svc.cluster.local"
	cases := []struct {
		name, extra string
		want        map[string]string
	}{
		{name: "no policy", want: map[string]string{"127.0.0.11": "istio", "127.0.0.12": "istio"}},
		{name: "workload a DISABLE",
			extra: pa("bar", "a", "{selector: {matchLabels: {v: a}}, mtls: {mode: DISABLE}}"),
			want:  map[string]string{"127.0.0.11": "", "127.0.0.12": "istio"}},
		{name: "namespace DISABLE, workload b STRICT",
			extra: pa("bar", "default", "{mtls: {mode: DISABLE}}") + pa("bar", "b", "{selector: {matchLabels: {v: b}}, mtls: {mode: STRICT}}"),
			want:  map[string]string{"127.0.0.11": "", "127.0.0.12": "istio"}},
		{name: "port level DISABLE on the container port",
			extra: pa("bar", "all", `{selector: {matchLabels: {app: httpbin}}, mtls: {mode: STRICT}, portLevelMtls: {"80": {mode: DISABLE}}}`),
			want:  map[string]string{"127.0.0.11": "", "127.0.0.12": ""}},
		{name: "port level DISABLE on one endpoint port",
			extra: pa("bar", "all", `{selector: {matchLabels: {app: httpbin}}, portLevelMtls: {"20002": {mode: DISABLE}}}`),
			want:  map[string]string{"127.0.0.11": "istio", "127.0.0.12": ""}},
		{name: "DestinationRule ISTIO_MUTUAL decides",
			extra: pa("bar", "default", "{mtls: {mode: DISABLE}}") +
				"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: httpbin, namespace: bar}\nspec: {host: httpbin.bar.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n",
			want: map[string]string{"127.0.0.11": "istio", "127.0.0.12": "istio"}},
		{name: "DestinationRule port-level DISABLE decides",
			extra: "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: httpbin, namespace: bar}\nspec: {host: httpbin.bar.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}, portLevelSettings: [{port: {number: 8000}, tls: {mode: DISABLE}}]}}\n",
			want:  map[string]string{"127.0.0.11": "", "127.0.0.12": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := generateYAML(t, svc+c.extra, sidecarFor("foo", nil), nil)
			if got := endpointTLSModes(res, name); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("endpoint tlsMode %v, want %v", got, c.want)
			}
		})
	}
}

// The client checks the server's SPIFFE ID in the trust domain and in each
// alias, as Istio's ExpandWithTrustDomains.
func TestAutoMTLSServerIdentityWithAliases(t *testing.T) {
	mesh := &meshv1alpha1.MeshConfig{TrustDomain: "new.example", TrustDomainAliases: []string{"old.example"}}
	res := generateYAML(t, autoMTLSMesh, sidecarFor("default", nil), mesh)
	c := clusterNamed(t, res, "outbound|9080||reviews.default.svc.cluster.local")
	var ctx tlsv3.UpstreamTlsContext
	if err := c.TransportSocketMatches[0].TransportSocket.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ctx.CommonTlsContext.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		got = append(got, m.Matcher.GetExact())
	}
	if strings.Join(got, " ") != "spiffe://new.example/ns/default/sa/reviews spiffe://old.example/ns/default/sa/reviews" {
		t.Errorf("server SANs %v", got)
	}
}
