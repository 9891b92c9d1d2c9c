package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacpb "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rbactcp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// lineApp answers each line it reads with "tcp:<line>": the app behind a
// sniffed port's TCP chains (a distinct cluster here, so a test sees which
// chain served a connection).
func lineApp(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, "tcp:"+line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type sniffOpts struct {
	strict bool
	// timeout sets listener_filters_timeout (nil: Istio's 0s, none);
	// stop turns continue_on_listener_filters_timeout off.
	timeout *durationpb.Duration
	stop    bool
	// tcpRBAC puts a network RBAC filter allowing only port 1 before
	// each TCP chain's tcp_proxy.
	tcpRBAC bool
}

// sniffListener is the listener xdsgen makes for an inbound port of
// unknown protocol (inbound_sniff.go, Istio's auto chains): HTTP chains
// by ALPN (mTLS: istio-http/*; plaintext: what the http_inspector sets),
// TCP chains otherwise; mTLS inline instead of SDS.
func sniffListener(t *testing.T, addr string, srv meshCert, c *ca.CA, o sniffOpts) *listener.Listener {
	hcmChain := func(m *listener.FilterChainMatch, mtls bool) *listener.FilterChain {
		fc := &listener.FilterChain{FilterChainMatch: m, Filters: []*listener.Filter{inboundHCM(t)}}
		if mtls {
			fc.TransportSocket = inboundTLS(t, srv, c)
		}
		return fc
	}
	tcpChain := func(m *listener.FilterChainMatch, mtls bool) *listener.FilterChain {
		fc := &listener.FilterChain{FilterChainMatch: m, Filters: []*listener.Filter{tcpProxyFilter(t, "app-tcp")}}
		if o.tcpRBAC {
			rb := &rbactcp.RBAC{StatPrefix: "tcp.", Rules: &rbacpb.RBAC{Action: rbacpb.RBAC_ALLOW, Policies: map[string]*rbacpb.Policy{
				"ns[foo]-policy[tcp-policy]-rule[0]": {Permissions: []*rbacpb.Permission{{Rule: &rbacpb.Permission_DestinationPort{DestinationPort: 1}}},
					Principals: []*rbacpb.Principal{{Identifier: &rbacpb.Principal_Any{Any: true}}}}}}}
			fc.Filters = append([]*listener.Filter{{Name: "envoy.filters.network.rbac", ConfigType: &listener.Filter_TypedConfig{TypedConfig: anyOf(t, rb)}}}, fc.Filters...)
		}
		if mtls {
			fc.TransportSocket = inboundTLS(t, srv, c)
		}
		return fc
	}
	mtlsHTTP := &listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}}
	l := &listener.Listener{Name: "virtualInbound_9002", Address: sockAddr(t, addr),
		ListenerFilters: []*listener.ListenerFilter{
			{Name: "envoy.filters.listener.tls_inspector", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{})}},
			{Name: "envoy.filters.listener.http_inspector", ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &httpinspectorv3.HttpInspector{})}},
		},
		ListenerFiltersTimeout: durationpb.New(0), ContinueOnListenerFiltersTimeout: !o.stop,
	}
	if o.timeout != nil {
		l.ListenerFiltersTimeout = o.timeout
	}
	if o.strict {
		l.ListenerFilters = l.ListenerFilters[:1]
		l.FilterChains = []*listener.FilterChain{hcmChain(mtlsHTTP, true), tcpChain(&listener.FilterChainMatch{TransportProtocol: "tls"}, true)}
		return l
	}
	l.FilterChains = []*listener.FilterChain{
		hcmChain(mtlsHTTP, true),
		hcmChain(&listener.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}}, false),
		tcpChain(&listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: []string{"istio-peer-exchange", "istio"}}, true),
		tcpChain(&listener.FilterChainMatch{TransportProtocol: "raw_buffer"}, false),
		tcpChain(&listener.FilterChainMatch{TransportProtocol: "tls"}, false),
	}
	return l
}

// tcpLine sends line over conn and returns what comes back, or the error.
func tcpLine(conn net.Conn, line string) (string, error) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, line); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// TestSniffedInbound: on one sniffed port, as Envoy's http_inspector and
// filter chain match serve Istio's auto chains, plaintext HTTP/1.1 and h2c
// reach the HTTP chain, a raw TCP line and an HTTP/1.0 request (not in
// Istio's plaintext HTTP ALPNs) the TCP chain; over mTLS, the ALPN Istio's
// client sidecars send for HTTP reaches the HTTP chain (with XFCC) and
// the TCP ALPN the TCP chain; under STRICT plaintext matches no chain.
func TestSniffedInbound(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, cliCert := issueMeshCert(t, c, "foo", "tcp-echo"), issueMeshCert(t, c, "foo", "sleep")
	httpApp, tcpApp, in := xfccApp(t), lineApp(t), freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	apply := func(o sniffOpts) {
		t.Helper()
		routes := inboundRoutes("app-http")
		routes.VirtualHosts[0].Routes[0].Action.(*route.Route_Route).Route.Timeout = durationpb.New(0)
		if _, err := p.apply(resourcesOf([]*listener.Listener{sniffListener(t, in, srvCert, c, o)},
			[]*route.RouteConfiguration{routes}, []*cluster.Cluster{staticCluster(t, "app-http", httpApp), staticCluster(t, "app-tcp", tcpApp)})); err != nil {
			t.Fatal(err)
		}
	}
	apply(sniffOpts{})

	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if body, err := fetch(plain, "http://"+in+"/", nil); err != nil || body != "xfcc=" {
		t.Errorf("plaintext HTTP/1.1: %q %v, want the HTTP chain", body, err)
	}
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: h2c}}).Get("http://" + in + "/")
	if err != nil {
		t.Fatalf("h2c prior knowledge: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "xfcc=" {
		t.Errorf("h2c: HTTP/%d %q, want HTTP/2 through the HTTP chain", resp.ProtoMajor, b)
	}
	dial := func() net.Conn {
		conn, err := net.DialTimeout("tcp", in, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	if got, err := tcpLine(dial(), "port 9002\n"); err != nil || got != "tcp:port 9002\n" {
		t.Errorf("raw TCP line: %q %v, want the TCP chain", got, err)
	}
	if got, err := tcpLine(dial(), "GET / HTTP/1.0\r\n\r\n"); err != nil || got != "tcp:GET / HTTP/1.0\r\n" {
		t.Errorf("HTTP/1.0: %q %v, want the TCP chain (Istio matches only http/1.1 and h2c)", got, err)
	}

	// mTLS: ALPN istio-http/1.1 picks the HTTP chain (XFCC names the
	// client), istio-peer-exchange the TCP chain.
	body, err := fetch(mtlsClient(&cliCert), "https://"+in+"/", nil)
	if err != nil || !strings.Contains(body, "URI=spiffe://cluster.local/ns/foo/sa/sleep") {
		t.Errorf("mTLS HTTP (ALPN istio-http/1.1): %q %v, want the HTTP chain with XFCC", body, err)
	}
	tc, err := tls.Dial("tcp", in, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio-peer-exchange", "istio"}, Certificates: []tls.Certificate{cliCert.pair}})
	if err != nil {
		t.Fatalf("mTLS TCP: %v", err)
	}
	if got, err := tcpLine(tc, "hello\n"); err != nil || got != "tcp:hello\n" {
		t.Errorf("mTLS TCP (ALPN istio-peer-exchange): %q %v, want the TCP chain", got, err)
	}

	stats := statsOf(t, p)
	for _, want := range []string{"http_inspector.http11_found: 1\n", "http_inspector.http2_found: 1\n", "http_inspector.http10_found: 1\n",
		"http_inspector.http_not_found: 1\n", "downstream_pre_cx_timeout: 0\n"} {
		if !strings.Contains(stats, "listener.virtualInbound_9002."+want) {
			t.Errorf("/stats lacks listener.virtualInbound_9002.%s", want)
		}
	}

	// STRICT: plaintext, HTTP or not, matches no chain and is closed.
	apply(sniffOpts{strict: true})
	if body, err := fetch(plain, "http://"+in+"/", nil); err == nil {
		t.Errorf("STRICT served plaintext HTTP: %q", body)
	}
	if got, err := tcpLine(dial(), "port 9002\n"); err == nil {
		t.Errorf("STRICT served a plaintext TCP line: %q", got)
	}
	if body, err := fetch(mtlsClient(&cliCert), "https://"+in+"/", nil); err != nil || !strings.Contains(body, "URI=spiffe://") {
		t.Errorf("STRICT mTLS HTTP: %q %v", body, err)
	}
}

// TestSniffedInboundRBAC: a TCP line on a sniffed port goes to the TCP
// chain at once, whose network RBAC (an ALLOW policy for other ports)
// closes it without waiting for anything: the authz-tcp case's port 9002.
func TestSniffedInboundRBAC(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srvCert := issueMeshCert(t, c, "foo", "tcp-echo")
	in := freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	if _, err := p.apply(resourcesOf([]*listener.Listener{sniffListener(t, in, srvCert, c, sniffOpts{tcpRBAC: true})},
		[]*route.RouteConfiguration{inboundRoutes("app-http")},
		[]*cluster.Cluster{staticCluster(t, "app-http", xfccApp(t)), staticCluster(t, "app-tcp", lineApp(t))})); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := tcpLine(conn, "port 9002\n")
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("denied TCP line: %q %v after %v, want closed at once", got, err, time.Since(start))
	}
	if !strings.Contains(statsOf(t, p), "tcp.rbac.denied: 1\n") {
		t.Errorf("the network RBAC did not decide:\n%s", statsOf(t, p))
	}
}

// TestSniffTimeout: a client that sends nothing. With Istio's settings
// (continue_on_listener_filters_timeout) it is served by the TCP chain once
// listener_filters_timeout passes, so a server-first protocol works and
// its late bytes arrive; without continue the connection is closed then,
// as Envoy's ActiveTcpSocket::onTimeout does. A client that sends part of
// a request line and stalls is timed out the same way.
func TestSniffTimeout(t *testing.T) {
	c, err := ca.New(ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srvCert := issueMeshCert(t, c, "foo", "tcp-echo")
	in := freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	apply := func(o sniffOpts) {
		t.Helper()
		if _, err := p.apply(resourcesOf([]*listener.Listener{sniffListener(t, in, srvCert, c, o)},
			[]*route.RouteConfiguration{inboundRoutes("app-http")},
			[]*cluster.Cluster{staticCluster(t, "app-http", xfccApp(t)), staticCluster(t, "app-tcp", lineApp(t))})); err != nil {
			t.Fatal(err)
		}
	}
	const timeout = 200 * time.Millisecond
	apply(sniffOpts{timeout: durationpb.New(timeout)})
	for _, first := range []string{"", "GE"} {
		conn, err := net.Dial("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, first)
		time.Sleep(timeout + 150*time.Millisecond)
		if got, err := tcpLine(conn, "late\n"); err != nil || got != "tcp:"+first+"late\n" {
			t.Errorf("sent %q then waited past the timeout: %q %v, want the TCP chain (continue on timeout)", first, got, err)
		}
	}
	apply(sniffOpts{timeout: durationpb.New(timeout), stop: true})
	conn, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if d := time.Since(start); d < timeout-20*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v, want about the listener_filters_timeout %v", d, timeout)
	}
	if stats := statsOf(t, p); !strings.Contains(stats, "listener.virtualInbound_9002.downstream_pre_cx_timeout: 3\n") {
		t.Errorf("/stats: want 3 listener filter timeouts:\n%s", stats)
	}
}
