package proxy

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/ca"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// connProbe is an HTTP filter known only to these tests: it records the
// httpfilter.Conn each request's Stream carries.
type connProbe struct{}

type probeFilter struct{}

var lastConn atomic.Pointer[httpfilter.Conn]

func (probeFilter) Decode(s *httpfilter.Stream) httpfilter.Status {
	lastConn.Store(s.Conn)
	return httpfilter.Continue
}

func (connProbe) Name() string       { return "test.conn_probe" }
func (connProbe) ConfigType() string { return "google.protobuf.StringValue" }
func (connProbe) NewFilter(*anypb.Any) (httpfilter.Filter, error) {
	return probeFilter{}, nil
}
func (connProbe) CompilePerRoute(*httpfilter.PerRouteInput) (any, error) { return nil, nil }

var _ = httpfilter.Register(connProbe{})

// meshCert is a workload certificate for ns/sa signed by the mesh CA, as
// the proxy's identity gets one (a CSR naming the SPIFFE ID).
type meshCert struct {
	pair            tls.Certificate
	leaf            *x509.Certificate
	certPEM, keyPEM []byte
}

func issueMeshCert(t *testing.T, c *ca.CA, ns, sa string) meshCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := url.Parse(ca.Identity(c.TrustDomain(), ns, sa))
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := c.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	m := meshCert{certPEM: []byte(chain[0]), keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
	if m.pair, err = tls.X509KeyPair(m.certPEM, m.keyPEM); err != nil {
		t.Fatal(err)
	}
	m.leaf, _ = x509.ParseCertificate(m.pair.Certificate[0])
	return m
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func inlineBytes(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

func sockAddr(t *testing.T, addr string) *core.Address {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

// inboundTLS is the mTLS chain's DownstreamTlsContext, as Istio's inbound
// mTLS chain (SPIFFE URI prefix of the trust domain, client certificate
// required), with the server certificate and roots inline.
func inboundTLS(t *testing.T, srv meshCert, c *ca.CA) *core.TransportSocket {
	ctx := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:   []string{"h2", "http/1.1"},
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inlineBytes(srv.certPEM), PrivateKey: inlineBytes(srv.keyPEM)}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inlineBytes(c.RootPEM()),
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + c.TrustDomain() + "/"}}}},
		}},
	}}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
}

var istioInboundALPN = []string{"istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// inboundHCM is the inbound connection manager, XFCC as Istio's sidecar
// inbound sets it.
func inboundHCM(t *testing.T) *listener.Filter {
	m := &hcm.HttpConnectionManager{StatPrefix: "inbound_0.0.0.0_9080",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "inbound|9080",
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}},
		HttpFilters: []*hcm.HttpFilter{
			{Name: "test.conn_probe", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: anyOf(t, wrapperspb.String("probe"))}},
			{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
		ForwardClientCertDetails:    hcm.HttpConnectionManager_APPEND_FORWARD,
		SetCurrentClientCertDetails: &hcm.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Dns: true, Uri: true},
	}
	return &listener.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: anyOf(t, m)}}
}

func tcpProxyFilter(t *testing.T, clusterName string) *listener.Filter {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: clusterName, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: clusterName}}
	return &listener.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{TypedConfig: anyOf(t, tp)}}
}

// inboundListener is a sidecar's inbound listener as Istio shapes it
// (SECURITY.md contract 2): the tls_inspector, an mTLS chain matched on
// transport "tls" and Istio's ALPN, and with permissive a raw_buffer
// chain; each chain holds filter.
func inboundListener(t *testing.T, name, addr string, srv meshCert, c *ca.CA, permissive bool, filter func() *listener.Filter) *listener.Listener {
	l := &listener.Listener{Name: name, Address: sockAddr(t, addr), TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters: []*listener.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{})}}},
		FilterChains: []*listener.FilterChain{{Name: "mtls",
			FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: istioInboundALPN},
			TransportSocket:  inboundTLS(t, srv, c), Filters: []*listener.Filter{filter()}}},
	}
	if permissive {
		l.FilterChains = append(l.FilterChains, &listener.FilterChain{Name: "plaintext",
			FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: []*listener.Filter{filter()}})
	}
	return l
}

func staticCluster(t *testing.T, name, addr string) *cluster.Cluster {
	return &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(t, addr)}}}}}}}}
}

func inboundRoutes(clusterName string) *route.RouteConfiguration {
	return &route.RouteConfiguration{Name: "inbound|9080", VirtualHosts: []*route.VirtualHost{{Name: "inbound", Domains: []string{"*"},
		Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName}}}}}}}}
}

func resourcesOf(ls []*listener.Listener, rcs []*route.RouteConfiguration, cs []*cluster.Cluster) xdsclient.Resources {
	res := xdsclient.Resources{Items: map[string]map[string]proto.Message{
		xdsclient.ListenerType: {}, xdsclient.RouteType: {}, xdsclient.ClusterType: {}}, Versions: map[string]string{}}
	for _, l := range ls {
		res.Items[xdsclient.ListenerType][l.Name] = l
	}
	for _, r := range rcs {
		res.Items[xdsclient.RouteType][r.Name] = r
	}
	for _, c := range cs {
		res.Items[xdsclient.ClusterType][c.Name] = c
	}
	return res
}

// xfccApp answers with the x-forwarded-client-cert it received.
func xfccApp(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "xfcc="+strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), "|"))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// mtlsClient speaks to a sidecar inbound as a client sidecar does: its
// workload certificate, Istio's ALPN (and http/1.1 to pick the protocol).
func mtlsClient(cert *meshCert) *http.Client {
	cfg := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-http/1.1", "istio", "http/1.1"}}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.pair}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func fetch(c *http.Client, rawURL string, hdr http.Header) (string, error) {
	req, _ := http.NewRequest("GET", rawURL, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

func statsOf(t *testing.T, p *Proxy) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats", nil))
	return rec.Body.String()
}

// TestPermissiveInbound: one PERMISSIVE-shaped inbound listener serves an
// mTLS client and a plaintext client on the same port, both reaching the
// app; the app sees XFCC (By, Hash, Subject, URI) only from the mTLS one,
// a forged XFCC on plaintext is removed, one from an mTLS peer is
// appended to; the listener counts each kind of connection; the filters
// see the peer's principal.
func TestPermissiveInbound(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, cliCert := issueMeshCert(t, c, "default", "reviews"), issueMeshCert(t, c, "default", "productpage")
	app, in := xfccApp(t), freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	res := resourcesOf([]*listener.Listener{inboundListener(t, "inbound_9080", in, srvCert, c, true, func() *listener.Filter { return inboundHCM(t) })},
		[]*route.RouteConfiguration{inboundRoutes("app")}, []*cluster.Cluster{staticCluster(t, "app", app)})
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cliCert.leaf.Raw)
	wantXFCC := fmt.Sprintf(`By=spiffe://cluster.local/ns/default/sa/reviews;Hash=%s;Subject="%s";URI=spiffe://cluster.local/ns/default/sa/productpage`,
		hex.EncodeToString(sum[:]), cliCert.leaf.Subject.String())

	body, err := fetch(mtlsClient(&cliCert), "https://"+in+"/", nil)
	if err != nil || body != "xfcc="+wantXFCC {
		t.Fatalf("mTLS: %q %v\nwant xfcc=%s", body, err, wantXFCC)
	}
	dc := lastConn.Load()
	if dc == nil || dc.PeerPrincipal != "spiffe://cluster.local/ns/default/sa/productpage" || dc.TLS == nil ||
		dc.LocalAddr.String() != in || !dc.RemoteAddr.Addr().IsLoopback() {
		t.Errorf("the filters' connection: %+v", dc)
	}
	// One Conn per connection: two requests on one connection see the same.
	keep := mtlsClient(&cliCert)
	keep.Transport.(*http.Transport).DisableKeepAlives = false
	var seen []*httpfilter.Conn
	for range 2 {
		if _, err := fetch(keep, "https://"+in+"/", nil); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, lastConn.Load())
	}
	keep.CloseIdleConnections()
	// HTTP/2 over the mTLS chain when ALPN picks h2 (net/http is handed the
	// *tls.Conn itself).
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "istio"}, Certificates: []tls.Certificate{cliCert.pair}}}}
	resp, err := h2.Get("https://" + in + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h2.CloseIdleConnections()
	if resp.ProtoMajor != 2 || string(b) != "xfcc="+wantXFCC {
		t.Errorf("h2 over mTLS: HTTP/%d %q", resp.ProtoMajor, b)
	}
	if seen[0] != seen[1] || seen[0] == dc {
		t.Errorf("Stream.Conn: same on one connection %v, differs between connections %v", seen[0] == seen[1], seen[0] != dc)
	}
	body, err = fetch(mtlsClient(&cliCert), "https://"+in+"/", http.Header{"X-Forwarded-Client-Cert": {"By=upstream"}})
	if err != nil || body != "xfcc=By=upstream,"+wantXFCC {
		t.Errorf("mTLS with an XFCC from the peer (APPEND_FORWARD): %q %v", body, err)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	body, err = fetch(plain, "http://"+in+"/", http.Header{"X-Forwarded-Client-Cert": {"By=forged"}})
	if err != nil || body != "xfcc=" {
		t.Errorf("plaintext on the PERMISSIVE port: %q %v (a forged XFCC must be removed)", body, err)
	}
	if dc := lastConn.Load(); dc.TLS != nil || dc.PeerPrincipal != "" || dc.ServerName != "" {
		t.Errorf("plaintext connection seen as %+v", dc)
	}
	stats := statsOf(t, p)
	for _, want := range []string{"listener.inbound_9080.downstream_cx_mtls: 4\n", "listener.inbound_9080.downstream_cx_plaintext: 1\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats lacks %q:\n%s", want, stats)
		}
	}

	// STRICT: the same listener without its raw_buffer chain refuses
	// plaintext at the connection; mTLS still passes; a TLS client
	// without a certificate fails the handshake.
	strict := resourcesOf([]*listener.Listener{inboundListener(t, "inbound_9080", in, srvCert, c, false, func() *listener.Filter { return inboundHCM(t) })},
		[]*route.RouteConfiguration{inboundRoutes("app")}, []*cluster.Cluster{staticCluster(t, "app", app)})
	if _, err := p.apply(strict); err != nil {
		t.Fatal(err)
	}
	if body, err := fetch(plain, "http://"+in+"/", nil); err == nil {
		t.Errorf("STRICT served plaintext: %q", body)
	}
	if _, err := fetch(mtlsClient(&cliCert), "https://"+in+"/", nil); err != nil {
		t.Errorf("STRICT refused mTLS: %v", err)
	}
	if body, err := fetch(mtlsClient(nil), "https://"+in+"/", nil); err == nil {
		t.Errorf("STRICT served TLS without a client certificate: %q", body)
	}
	stats = statsOf(t, p)
	for _, want := range []string{"listener.inbound_9080.downstream_cx_mtls: 5\n", "listener.inbound_9080.no_filter_chain_match: 1\n"} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats lacks %q:\n%s", want, stats)
		}
	}
}

// TestTLSTerminatedTCP: a TCP port under STRICT: the mTLS chain terminates
// TLS and proxies the bytes to a TCP app; plaintext is closed.
func TestTLSTerminatedTCP(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, cliCert := issueMeshCert(t, c, "default", "db"), issueMeshCert(t, c, "default", "client")
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go func() {
		for {
			conn, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); io.Copy(conn, conn) }()
		}
	}()
	in := freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	res := resourcesOf([]*listener.Listener{inboundListener(t, "inbound_5432", in, srvCert, c, false, func() *listener.Filter { return tcpProxyFilter(t, "db") })},
		nil, []*cluster.Cluster{staticCluster(t, "db", echoLn.Addr().String())})
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", in, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio"}, Certificates: []tls.Certificate{cliCert.pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if st := conn.ConnectionState(); len(st.PeerCertificates) == 0 || st.PeerCertificates[0].URIs[0].String() != "spiffe://cluster.local/ns/default/sa/db" {
		t.Fatalf("served by the wrong certificate")
	}
	io.WriteString(conn, "PING\n")
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "PING\n" {
		t.Fatalf("through the TLS-terminated TCP chain: %q %v", line, err)
	}
	pc, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(pc, "PING\n")
	if n, err := pc.Read(make([]byte, 8)); err == nil {
		t.Errorf("plaintext on a STRICT TCP port read %d bytes", n)
	}
}

// TestSourceIPRule: only a sidecar given an --ip other than the default
// binds its upstream connections to it.
func TestSourceIPRule(t *testing.T) {
	for _, c := range []struct {
		typ  model.ProxyType
		ip   string
		want string
	}{
		{model.Sidecar, DefaultWorkloadIP, "invalid IP"},
		{model.Sidecar, "127.0.0.2", "127.0.0.2"},
		{model.Router, "127.0.0.2", "invalid IP"},
		{model.Sidecar, "not-an-ip", "invalid IP"},
	} {
		if got := sourceIP(model.Proxy{Type: c.typ, IPs: []string{c.ip}}).String(); got != c.want {
			t.Errorf("%s --ip %s: source %s, want %s", c.typ, c.ip, got, c.want)
		}
	}
}

// TestWrongTrustDomainRefused: a client certificate from the mesh's own
// root but for another trust domain (spiffe://evil.local/...) is refused
// by the inbound mTLS chain's SPIFFE prefix check, as Envoy's SAN matchers
// refuse it; the mesh's own trust domain still gets through.
func TestWrongTrustDomainRefused(t *testing.T) {
	dir := t.TempDir()
	c, err := ca.New(ca.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The same root and key, signing for another trust domain.
	evil, err := ca.New(ca.Options{Dir: dir, TrustDomain: "evil.local"})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, good, bad := issueMeshCert(t, c, "default", "reviews"), issueMeshCert(t, c, "default", "productpage"),
		issueMeshCert(t, evil, "default", "productpage")
	if !strings.HasPrefix(bad.leaf.URIs[0].String(), "spiffe://evil.local/") || !bytes.Equal(bad.leaf.RawIssuer, good.leaf.RawIssuer) {
		t.Fatalf("the test needs a certificate of another trust domain from the same root: %v", bad.leaf.URIs)
	}
	app, in := xfccApp(t), freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	res := resourcesOf([]*listener.Listener{inboundListener(t, "inbound_9080", in, srvCert, c, false, func() *listener.Filter { return inboundHCM(t) })},
		[]*route.RouteConfiguration{inboundRoutes("app")}, []*cluster.Cluster{staticCluster(t, "app", app)})
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(mtlsClient(&good), "https://"+in+"/", nil); err != nil {
		t.Fatalf("the mesh's trust domain: %v", err)
	}
	if body, err := fetch(mtlsClient(&bad), "https://"+in+"/", nil); err == nil {
		t.Fatalf("a certificate of trust domain evil.local was served: %q", body)
	}
}
