package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/internal/netnstest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// captureXDS is a sidecar's config in capture mode, built by hand with
// Istio's shapes: virtualOutbound on 0.0.0.0:15001 (use_original_dst, its
// own chain the PassthroughCluster), a bind_to_port false TCP listener
// for the service port svcPort (to the svc cluster) and one HTTP listener
// for httpPort (every route to the PassthroughCluster), virtualInbound on
// 0.0.0.0:15006 (original_dst filter, a chain for destination port 9080
// to the app on 127.0.0.1:9080, one for the pod's IPv6 address
// (prefix_ranges) to 127.0.0.1:7070, the others to the
// InboundPassthroughCluster).
func captureXDS(t *testing.T, svcPort, httpPort int, svcAddr, podIP6 string) *xdsgen.Resources {
	any := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	addr := func(ip string, port int) *core.Address {
		return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: ip, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)}}}}
	}
	tcp := func(cl string) []*listener.Filter {
		return []*listener.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listener.Filter_TypedConfig{
			TypedConfig: any(&tcpproxyv3.TcpProxy{StatPrefix: cl, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cl}})}}}
	}
	static := func(name, host string, port int) *cluster.Cluster {
		return &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
			ConnectTimeout: durationpb.New(time.Second),
			LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: addr(host, port)}}}}}}}}
	}
	svcHost, svcP, _ := net.SplitHostPort(svcAddr)
	svcPortN, _ := strconv.Atoi(svcP)
	manager := &hcm.HttpConnectionManager{StatPrefix: "outbound_0.0.0.0_" + strconv.Itoa(httpPort),
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: strconv.Itoa(httpPort),
			ConfigSource: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: any(&routerv3.Router{})}}}}
	return &xdsgen.Resources{
		Listeners: []*listener.Listener{
			{Name: "virtualOutbound", Address: addr("0.0.0.0", 15001), UseOriginalDst: wrapperspb.Bool(true),
				TrafficDirection: core.TrafficDirection_OUTBOUND,
				FilterChains:     []*listener.FilterChain{{Name: "virtualOutbound-catchall-tcp", Filters: tcp("PassthroughCluster")}}},
			{Name: "0.0.0.0_" + strconv.Itoa(svcPort), Address: addr("0.0.0.0", svcPort), BindToPort: wrapperspb.Bool(false),
				TrafficDirection: core.TrafficDirection_OUTBOUND,
				FilterChains:     []*listener.FilterChain{{Filters: tcp("outbound|svc")}}},
			{Name: "0.0.0.0_" + strconv.Itoa(httpPort), Address: addr("0.0.0.0", httpPort), BindToPort: wrapperspb.Bool(false),
				TrafficDirection: core.TrafficDirection_OUTBOUND,
				FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
					ConfigType: &listener.Filter_TypedConfig{TypedConfig: any(manager)}}}}}},
			{Name: "virtualInbound", Address: addr("0.0.0.0", 15006), TrafficDirection: core.TrafficDirection_INBOUND,
				ListenerFilters: []*listener.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
					ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: any(&originaldst.OriginalDst{})}}},
				FilterChains: []*listener.FilterChain{{Name: "inbound|9080",
					FilterChainMatch: &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080)}, Filters: tcp("inbound|9080")},
					{Name: "inbound-ipv6", FilterChainMatch: &listener.FilterChainMatch{PrefixRanges: []*core.CidrRange{
						{AddressPrefix: podIP6, PrefixLen: wrapperspb.UInt32(128)}}}, Filters: tcp("inbound|7070")},
					{Name: "virtualInbound", Filters: tcp("InboundPassthroughCluster")}}},
		},
		Routes: []*route.RouteConfiguration{{Name: strconv.Itoa(httpPort), VirtualHosts: []*route.VirtualHost{{Name: "allow_any", Domains: []string{"*"},
			Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: "PassthroughCluster"}}}}}}}}},
		Clusters: []*cluster.Cluster{
			{Name: "PassthroughCluster", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
				ConnectTimeout: durationpb.New(time.Second), LbPolicy: cluster.Cluster_CLUSTER_PROVIDED},
			// Istio's: bound to 127.0.0.6, which the capture lets through.
			{Name: "InboundPassthroughCluster", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
				ConnectTimeout: durationpb.New(time.Second), LbPolicy: cluster.Cluster_CLUSTER_PROVIDED,
				UpstreamBindConfig: &core.BindConfig{SourceAddress: &core.SocketAddress{Address: "127.0.0.6",
					PortSpecifier: &core.SocketAddress_PortValue{PortValue: 0}}}},
			static("outbound|svc", svcHost, svcPortN),
			static("inbound|9080", "127.0.0.1", 9080),
			static("inbound|7070", "127.0.0.1", 7070),
		},
	}
}

// lineServer answers every connection with its name and the peer it saw,
// then closes it.
func lineServer(t *testing.T, l net.Listener, name string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s from %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// captured is a pod made for TestTransparentCapture: its namespace with
// the capture installed and the sidecar running, and the host's servers.
type captured struct {
	t      *testing.T
	ns     *netnstest.NS
	ctx    context.Context
	host   string
	client *http.Client // from inside the namespace
	// ports of the host's servers: real (behind the bind_to_port false
	// listener), direct (no listener), http; direct6 is an address.
	realPort, directPort, httpPort int
	direct6                        string
}

// hostServer listens on the host's end of the veth pair.
func (e *captured) hostServer(name string) (net.Listener, int) {
	l, err := net.Listen("tcp", e.host+":0")
	if err != nil {
		e.t.Fatal(err)
	}
	if name != "" {
		lineServer(e.t, l, name)
	}
	return l, l.Addr().(*net.TCPAddr).Port
}

// startCaptured starts the host's servers and the ADS server, runs
// `sluice capture` in a new namespace, the apps on 9080 and 7070 in it,
// and `sluice proxy` as uid 1337.
func startCaptured(t *testing.T, ctx context.Context) *captured {
	ns := netnstest.New(t)
	e := &captured{t: t, ns: ns, ctx: ctx, host: ns.HostIP.String()}
	svcL, _ := e.hostServer("svc")
	_, e.realPort = e.hostServer("real")
	_, e.directPort = e.hostServer("direct")
	d6, err := net.Listen("tcp", net.JoinHostPort(ns.HostIP6.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	lineServer(t, d6, "direct6")
	e.direct6 = d6.Addr().String()
	httpL, httpPort := e.hostServer("")
	e.httpPort = httpPort
	hsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "http-direct host=%s", r.Host)
	})}
	go hsrv.Serve(httpL)
	t.Cleanup(func() { hsrv.Close() })
	res := captureXDS(t, e.realPort, httpPort, svcL.Addr().String(), ns.IP6.String())
	xds := xdsserver.New(xdsserver.Options{Generate: func(*model.Proxy) (*xdsgen.Resources, error) { return res, nil }})
	xdsL, _ := e.hostServer("")
	go xds.Serve(ctx, xdsL)

	bin := sharedBinary(t)
	if out, err := ns.Command(ctx, bin, "capture", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
		"-i", "*", "-b", "*", "-d", "15090,15021,15020", "--ipv6=true").CombinedOutput(); err != nil {
		t.Fatalf("sluice capture: %v\n%s", err, out)
	}
	for port, name := range map[string]string{"9080": "app", "7070": "other"} {
		l, err := ns.Listen("tcp", "0.0.0.0:"+port)
		if err != nil {
			t.Fatal(err)
		}
		lineServer(t, l, name)
	}
	px := exec.CommandContext(ctx, bin, "proxy", "--name", "app-0", "--xds-address", xdsL.Addr().String(), "--xds-tls=false",
		"--admin-address", "127.0.0.1:15000", "--outbound-address", "", "--token-file", "", "--ca-root-file", "")
	px.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1337, Gid: 1337}}
	var logs strings.Builder
	px.Stdout, px.Stderr = &logs, &logs
	if err := ns.Start(px); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		px.Process.Kill()
		px.Wait()
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	e.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return ns.Dial(ctx, network, addr) }}}
	return e
}

// dial connects from inside the namespace (as the app) and reads all.
func (e *captured) dial(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	c, err := e.ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// inbound connects from the host to the pod's ip:port, returns the line.
func (e *captured) inbound(ip netip.Addr, port string) string {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 3*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

// TestTransparentCapture runs a pod's capture for real: in a network
// namespace, `sluice capture` installs Istio's REDIRECT rules and a
// `sluice proxy` running as uid 1337 takes its config (captureXDS) from an
// ADS server on the host. An app's connection to host:svcPort lands on
// the bind_to_port false listener of that port (handed off by
// virtualOutbound), to another port goes through the PassthroughCluster
// to the real destination (the restored original destination, for TCP
// and for HTTP whatever the Host; IPv4 and IPv6), inbound to the
// namespace's address:9080 is redirected to virtualInbound and served by
// its 9080 chain, inbound to another port passed through from 127.0.0.6
// (or, to the IPv6 address, taken by the chain whose prefix_ranges hold
// it), traffic of uid 1337 is not captured, and a connection straight to
// 15001 (not redirected) is closed, not passed through to itself.
func TestTransparentCapture(t *testing.T) {
	netnstest.Require(t, "iptables-restore", "bash")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := startCaptured(t, ctx)
	ns := e.ns
	svc := net.JoinHostPort(e.host, strconv.Itoa(e.realPort))
	waitFor(t, "the proxy serves captured connections", func() error {
		if got, err := e.dial(svc); err != nil || !strings.HasPrefix(got, "svc from ") {
			return fmt.Errorf("%q %v", got, err)
		}
		return nil
	})
	// Another port: virtualOutbound's own chain, the PassthroughCluster to
	// the original destination; the same over IPv6 (IP6T_SO_ORIGINAL_DST).
	for addr, want := range map[string]string{
		net.JoinHostPort(e.host, strconv.Itoa(e.directPort)): "direct from " + ns.IP.String(),
		e.direct6: "direct6 from [" + ns.IP6.String() + "]",
	} {
		if got, err := e.dial(addr); err != nil || !strings.HasPrefix(got, want) {
			t.Errorf("passthrough to %s: %q %v, want %q", addr, got, err, want)
		}
	}
	// HTTP on a captured port: the route's ORIGINAL_DST cluster goes to the
	// restored destination, not to the Host the request names.
	req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(e.host, strconv.Itoa(e.httpPort))+"/", nil)
	req.Host = "nowhere.invalid"
	if resp, err := e.client.Do(req); err != nil {
		t.Errorf("HTTP passthrough: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "http-direct host=nowhere.invalid" {
			t.Errorf("HTTP passthrough: %d %q", resp.StatusCode, b)
		}
	}
	// Inbound, redirected to virtualInbound: 9080's chain sends it to the
	// app from loopback; a port without a chain passes through to the
	// original destination from 127.0.0.6 (upstream_bind_config), which is
	// not redirected again; to the IPv6 address, the prefix_ranges chain.
	for _, c := range []struct {
		ip         netip.Addr
		port, want string
	}{
		{ns.IP, "9080", "app from 127.0.0.1:"}, {ns.IP6, "9080", "app from 127.0.0.1:"},
		{ns.IP, "7070", "other from 127.0.0.6:"}, {ns.IP6, "7070", "other from 127.0.0.1:"},
	} {
		if got := e.inbound(c.ip, c.port); !strings.HasPrefix(got, c.want) {
			t.Errorf("inbound to %s:%s: %q, want %q", c.ip, c.port, got, c.want)
		}
	}
	checkNotCaptured(t, e)
}

// checkNotCaptured: uid 1337 reaches the real port; a connection straight
// to 15001 (loopback traffic is not redirected) has the listener itself
// as original destination, so it is neither handed off nor passed
// through (back to 15001): closed at once; virtualOutbound counted its
// hand-offs.
func checkNotCaptured(t *testing.T, e *captured) {
	sh := exec.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d; cat <&3", e.host, e.realPort))
	sh.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1337, Gid: 1337}}
	var out strings.Builder
	sh.Stdout, sh.Stderr = &out, &out
	if err := e.ns.Start(sh); err != nil {
		t.Fatal(err)
	}
	sh.Wait()
	if !strings.HasPrefix(out.String(), "real from "+e.ns.IP.String()) {
		t.Errorf("uid 1337: %q, want the real server reached directly", out.String())
	}
	start := time.Now()
	got, err := e.dial(net.JoinHostPort(e.ns.IP.String(), "15001"))
	if err != nil && !isReset(err) || got != "" || time.Since(start) > 2*time.Second {
		t.Errorf("direct to 15001: %q %v after %v, want closed at once", got, err, time.Since(start))
	}
	if got, err := e.dial(net.JoinHostPort(e.host, strconv.Itoa(e.realPort))); err != nil || !strings.HasPrefix(got, "svc from ") {
		t.Errorf("after the direct connection: %q %v", got, err)
	}
	stats, err := fetchIn(e.client, "http://127.0.0.1:15000/stats")
	if err != nil {
		t.Fatal(err)
	}
	if want := "listener.virtualOutbound.sluice.handed_off: "; !strings.Contains(stats, want) || strings.Contains(stats, want+"0\n") {
		t.Errorf("stats: want %q > 0 in\n%s", want, stats)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "EOF"))
}

func fetchIn(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sharedBinary is the sluice binary copied where another user (the
// proxy's uid 1337) may run it.
func sharedBinary(t *testing.T) string {
	t.Helper()
	src := testenv.Binary(t)
	dir, err := os.MkdirTemp("", "sluice-shared-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "sluice")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
