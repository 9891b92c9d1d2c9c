package xdsgen

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// The mesh ALPN follows the cluster's upstream protocol, as Istio's
// istio.alpn filter makes it on the wire: a server sidecar sniffing the
// port tells HTTP from TCP by it.
func TestMeshALPN(t *testing.T) {
	h1 := &clusterBuild{c: &cluster.Cluster{}}
	h1.httpOptions()
	h2 := &clusterBuild{c: &cluster.Cluster{}}
	h2.httpOptions().UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}}
	down := &clusterBuild{c: &cluster.Cluster{}}
	down.httpOptions().UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}
	for _, tc := range []struct {
		name  string
		b     *clusterBuild
		proto registry.Protocol
		want  string
	}{
		{"HTTP/1.1", h1, registry.ProtocolHTTP, "istio-http/1.1,istio,http/1.1"},
		{"unknown protocol, routed as HTTP", h1, registry.ProtocolUnknown, "istio-http/1.1,istio,http/1.1"},
		{"HTTP/2", h2, registry.ProtocolGRPC, "istio-h2,istio,h2"},
		{"TCP", &clusterBuild{c: &cluster.Cluster{}}, registry.ProtocolTCP, "istio-peer-exchange,istio"},
		{"the downstream's protocol", down, registry.ProtocolHTTP, "istio-peer-exchange,istio"},
	} {
		if got := strings.Join(meshALPN(tc.b, tc.proto), ","); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
