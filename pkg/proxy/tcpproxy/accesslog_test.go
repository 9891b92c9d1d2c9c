package tcpproxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/tcpproxy"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// runtimeFor generates a sidecar's config for yaml with mc and compiles
// it as the proxy does.
func runtimeFor(t *testing.T, mc *meshv1alpha1.MeshConfig, yaml string) *dataplane.Runtime {
	t.Helper()
	dec := config.Decode([]byte(yaml), config.DecodeOptions{File: "test.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	push := model.NewPushContext(model.PushOptions{Version: "1", Mesh: mc, Resources: dec.Resources})
	px := &model.Proxy{Type: model.Sidecar, Name: "client", Namespace: "default", IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:1", OutboundTCPIP: "127.0.0.1", PortOffset: 10000}
	res, err := xdsgen.Generate(push, px)
	if err != nil {
		t.Fatal(err)
	}
	items := res.ByType()
	rt, _, err := dataplane.Compile(dataplane.CompileOptions{Resources: xdsclient.Resources{Items: items}, Stats: dataplane.NewStatsStore()})
	if err != nil {
		t.Fatalf("the proxy rejects the generated config: %v", err)
	}
	return rt
}

// A TCP connection through tcp_proxy is logged when it closes, with
// Istio's text format: bytes both ways, upstream host, cluster, addresses.
func TestTCPAccessLog(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		c, err := backend.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c) // read the client's 6 bytes to EOF, then answer 3
		c.Write([]byte("bye"))
		c.Close()
	}()
	port := backend.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "tcp.log")
	rt := runtimeFor(t, &meshv1alpha1.MeshConfig{AccessLogFile: path}, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-0}
spec: {address: 127.0.0.1, labels: {app: db}, ports: {tcp: %d}}
`, port))
	var chain *dataplane.FilterChain
	for _, l := range rt.Listeners {
		for _, c := range l.Chains {
			if c.TCP != nil && strings.Contains(c.TCP.Cluster, "db.default") {
				chain = c
			}
		}
	}
	if chain == nil || len(chain.TCP.AccessLog) != 1 {
		t.Fatalf("no tcp_proxy chain with an access log for db")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		hc := &httpfilter.Conn{RemoteAddr: netip.MustParseAddrPort(c.RemoteAddr().String()), LocalAddr: netip.MustParseAddrPort(c.LocalAddr().String())}
		tcpproxy.Serve(c, tcpproxy.Connection{Chain: chain, Runtime: rt, Conn: hc, Scope: httpfilter.NewScope(), Logger: slog.Default()})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	<-done
	if string(got) != "bye" {
		t.Fatalf("got %q through the proxy", got)
	}
	accesslog.FlushAll()
	data, _ := os.ReadFile(path)
	f := strings.Fields(string(data))
	// [START] "- - -" 0 - - - "-" 6 3 DUR - "-" "-" "-" "-" "HOST" CLUSTER UPLOCAL DLOCAL DREMOTE - -
	if len(f) != 24 || f[1] != `"-` || f[4] != "0" || f[5] != "-" || f[9] != "6" || f[10] != "3" ||
		f[17] != fmt.Sprintf(`"127.0.0.1:%d"`, port) || f[18] != "outbound|5432||db.default.svc.cluster.local" ||
		!strings.HasPrefix(f[19], "127.0.0.1:") || f[20] != ln.Addr().String() || f[21] != c.LocalAddr().String() {
		t.Errorf("tcp access log line: %q", data)
	}
}
