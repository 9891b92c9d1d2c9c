package dataplane

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// tlsCluster is a STATIC cluster to addr originating TLS with alpn, HTTP/2
// when h2 (as Istio generates for a DestinationRule tls SIMPLE on an
// HTTP/2 port).
func tlsCluster(t *testing.T, name, addr string, alpn []string, h2 bool) *cluster.Cluster {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	tlsCtx, err := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{AlpnProtocols: alpn}})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(1e9),
		TransportSocket:      &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tlsCtx}},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}}}}},
	}
	if h2 {
		po, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
				Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}}})
		if err != nil {
			t.Fatal(err)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: po}
	}
	return c
}

// TestUpstreamProtocolOverTLS: a compiled HTTP/2 cluster originating TLS
// speaks h2 to an h2-capable TLS server (ALPN), and an HTTP/1.1 one speaks
// HTTP/1.1 through its connection pool, as the server records.
func TestUpstreamProtocolOverTLS(t *testing.T) {
	var major atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		major.Store(int64(r.ProtoMajor))
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{xdsclient.ClusterType: {
		"h2":  tlsCluster(t, "h2", addr, []string{"h2"}, true),
		"h1":  tlsCluster(t, "h1", addr, []string{"http/1.1"}, false),
		"mix": tlsCluster(t, "mix", addr, []string{"h2", "http/1.1"}, false),
	}}, Versions: map[string]string{}}
	rt, _, err := Compile(CompileOptions{Resources: res, Stats: NewStatsStore()})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"h2": 2, "h1": 1, "mix": 1} {
		cl := rt.Clusters[name]
		h := cl.Hosts[0]
		adm, err := cl.Admit(context.Background(), h, h.Address, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		req, _ := http.NewRequest("GET", "http://"+h.Address+"/", nil)
		resp, err := adm.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		adm.Release()
		if got := major.Load(); got != want {
			t.Errorf("cluster %s: the server saw HTTP/%d, want HTTP/%d", name, got, want)
		}
		cl.Transport.Close()
	}
}
