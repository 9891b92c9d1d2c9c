package dataplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpconn"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// testIdentity is a workload identity from the mesh CA, as
// pkg/proxy/identity holds one: its certificate (SDS "default") and the
// check of peers against the mesh roots (SDS "ROOTCA").
type testIdentity struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

func (i *testIdentity) Certificate() (*tls.Certificate, error) { return &i.cert, nil }

func (i *testIdentity) VerifyPeer(raw [][]byte, ids []string) error {
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: i.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	for _, u := range leaf.URIs {
		if len(ids) == 0 || slices.Contains(ids, u.String()) {
			return nil
		}
	}
	return errors.New("peer identity not expected")
}

func meshPair(t *testing.T, c *ca.CA, sa string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse(ca.Identity(c.TrustDomain(), "default", sa))
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := c.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	pair, err := tls.X509KeyPair([]byte(chain[0]), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func lbEndpoint(t *testing.T, addr string, tlsMode string) *endpoint.LbEndpoint {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ep := &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}
	if tlsMode != "" {
		md, err := structpb.NewStruct(map[string]any{"tlsMode": tlsMode})
		if err != nil {
			t.Fatal(err)
		}
		ep.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatchKey: md}}
	}
	return ep
}

// autoMTLSCluster is a cluster as Istio's auto mTLS builds it
// (SECURITY.md contract 1): "tlsMode-istio" ISTIO_MUTUAL for endpoints
// labelled tlsMode istio, then "tlsMode-disabled" plaintext.
func autoMTLSCluster(t *testing.T, name string, eps ...*endpoint.LbEndpoint) *cluster.Cluster {
	mtls := &tlsv3.UpstreamTlsContext{Sni: "outbound_.8080_._.svc.default.svc.cluster.local", CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: ca.SDSWorkloadCert}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/default/sa/server"}}}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: ca.SDSRootCA},
		}},
	}}
	mtlsAny, _ := anypb.New(mtls)
	rawAny, _ := anypb.New(&rawbufferv3.RawBuffer{})
	istio, _ := structpb.NewStruct(map[string]any{"tlsMode": "istio"})
	return &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second),
		TransportSocketMatches: []*cluster.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: istio, TransportSocket: &core.TransportSocket{Name: "envoy.transport_sockets.tls",
				ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mtlsAny}}},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &core.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
				ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: rawAny}}},
		},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: eps}}},
	}
}

// seen records what a test server saw of its clients.
type seen struct {
	mu    sync.Mutex
	peers []string
}

func (s *seen) add(v string) {
	s.mu.Lock()
	s.peers = append(s.peers, v)
	s.mu.Unlock()
}

func (s *seen) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers)
}

// TestTransportSocketMatches: in one cluster, the endpoint labelled
// tlsMode istio is reached over mTLS with the workload certificate (the
// server sees its SPIFFE ID) and the other in plaintext; a push that
// changes the cluster but not its transports keeps the transports, their
// pools and the hosts.
func TestTransportSocketMatches(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(c.RootPEM())
	id := &testIdentity{cert: meshPair(t, c, "client"), roots: roots}

	var mtlsSeen, plainSeen seen
	mtlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			mtlsSeen.add("no client certificate")
		} else {
			mtlsSeen.add(r.TLS.PeerCertificates[0].URIs[0].String())
		}
	}))
	mtlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{meshPair(t, c, "server")}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
		// No ALPN: a sidecar's inbound chooses none for Istio's protocols
		// (and Go's server would close a connection that chose "istio").
		NextProtos: []string{}}
	mtlsSrv.StartTLS()
	defer mtlsSrv.Close()
	plainSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			plainSeen.add("tls")
		} else {
			plainSeen.add("plaintext")
		}
	}))
	defer plainSrv.Close()
	mtlsAddr, plainAddr := mtlsSrv.Listener.Addr().String(), plainSrv.Listener.Addr().String()

	cl := autoMTLSCluster(t, "svc", lbEndpoint(t, mtlsAddr, "istio"), lbEndpoint(t, plainAddr, ""))
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{xdsclient.ClusterType: {"svc": cl}}, Versions: map[string]string{}}
	stats := NewStatsStore()
	rt, _, err := Compile(CompileOptions{Resources: res, Stats: stats, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	uc := rt.Clusters["svc"]
	for range 2 {
		for _, h := range uc.Hosts {
			adm, err := uc.Admit(context.Background(), h, h.Address, false)
			if err != nil {
				t.Fatalf("%s: %v", h.Address, err)
			}
			req, _ := http.NewRequest("GET", "http://"+h.Address+"/", nil)
			resp, err := adm.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s: %v", h.Address, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			adm.Release()
		}
	}
	if got := mtlsSeen.all(); len(got) != 2 || got[0] != "spiffe://cluster.local/ns/default/sa/client" {
		t.Errorf("the tlsMode=istio endpoint saw %v, want the client's SPIFFE ID twice", got)
	}
	if got := plainSeen.all(); len(got) != 2 || got[0] != "plaintext" {
		t.Errorf("the unlabelled endpoint saw %v, want plaintext twice", got)
	}
	if n := stats.Cluster("svc").CxTotal.Load(); n != 2 {
		t.Errorf("%d connections for 4 requests to 2 hosts: each host's connection is reused", n)
	}

	// A push changing the cluster's circuit breakers only.
	cl2 := proto.Clone(cl).(*cluster.Cluster)
	cl2.CircuitBreakers = &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(10)}}}
	rt2, _, err := Compile(CompileOptions{Resources: withType(res, xdsclient.ClusterType, map[string]proto.Message{"svc": cl2}), Previous: rt, Stats: stats, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	uc2 := rt2.Clusters["svc"]
	if uc2 == uc || len(uc2.Transports) != len(uc.Transports) {
		t.Fatalf("cluster rebuilt %v, transports %d then %d", uc2 != uc, len(uc.Transports), len(uc2.Transports))
	}
	for i := range uc.Transports {
		if uc2.Transports[i] != uc.Transports[i] {
			t.Errorf("transport %d not reused across a push that did not change it", i)
		}
	}
	for i := range uc.Hosts {
		if uc2.Hosts[i] != uc.Hosts[i] {
			t.Errorf("host %s not kept", uc.Hosts[i].Address)
		}
	}
	for _, tr := range uc2.Transports {
		tr.Close()
	}
}

// TestSourceIP: with a source address (a sidecar's --ip), HTTP pools and
// tcp_proxy connections leave from it: the server sees 127.0.0.2.
func TestSourceIP(t *testing.T) {
	peers := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		peers <- host
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	cl := autoMTLSCluster(t, "svc", lbEndpoint(t, addr, ""))
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{xdsclient.ClusterType: {"svc": cl}}, Versions: map[string]string{}}
	rt, _, err := Compile(CompileOptions{Resources: res, Stats: NewStatsStore(), SourceIP: netip.MustParseAddr("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	uc := rt.Clusters["svc"]
	defer uc.Transport.Close()
	h := uc.Hosts[0]
	adm, err := uc.Admit(context.Background(), h, h.Address, false)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+h.Address+"/", nil)
	resp, err := adm.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	adm.Release()
	if got := <-peers; got != "127.0.0.2" {
		t.Errorf("HTTP pool: the server saw %s, want 127.0.0.2", got)
	}

	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	tcpCl := autoMTLSCluster(t, "tcp", lbEndpoint(t, tcpLn.Addr().String(), ""))
	rt, _, err = Compile(CompileOptions{Resources: withType(res, xdsclient.ClusterType, map[string]proto.Message{"tcp": tcpCl}), Stats: NewStatsStore(), SourceIP: netip.MustParseAddr("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	up, err := tcpconn.Dial(context.Background(), rt.Clusters["tcp"], "")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	conn, err := tcpLn.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if host, _, _ := net.SplitHostPort(conn.RemoteAddr().String()); host != "127.0.0.2" {
		t.Errorf("tcp_proxy: the server saw %s, want 127.0.0.2", host)
	}
}
