package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// clientHello is the first flight of a TLS client, as raw bytes.
func clientHello(t *testing.T) []byte {
	a, b := net.Pipe()
	go tls.Client(a, &tls.Config{ServerName: "db.example", InsecureSkipVerify: true}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	return buf[:n]
}

// TestFilterDisabledAtRuntime: a tls_inspector whose filter_disabled
// matches the connection's destination port does not run, so a
// ClientHello on that port is taken as raw_buffer (the chain for plain
// TCP), while on the listener without it the TLS chain takes it.
func TestFilterDisabledAtRuntime(t *testing.T) {
	backend := func(name string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, name)
				c.Close()
			}
		}()
		return l.Addr().String()
	}
	tlsBackend, rawBackend := backend("tls-chain"), backend("raw-chain")
	mk := func(name, addr string, disabled bool) *listener.Listener {
		lf := &listener.ListenerFilter{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{})}}
		if disabled {
			_, p, _ := net.SplitHostPort(addr)
			port, _ := strconv.Atoi(p)
			lf.FilterDisabled = &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_DestinationPortRange{
				DestinationPortRange: &typev3.Int32Range{Start: int32(port), End: int32(port + 1)}}}
		}
		return &listener.Listener{Name: name, Address: sockAddr(t, addr), ListenerFilters: []*listener.ListenerFilter{lf},
			FilterChains: []*listener.FilterChain{
				{Name: "tls", FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "tls"}, Filters: []*listener.Filter{tcpProxyFilter(t, "tls")}},
				{Name: "raw", FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: []*listener.Filter{tcpProxyFilter(t, "raw")}},
			}}
	}
	on, off := freeAddr(t), freeAddr(t)
	p := New(Options{})
	defer p.shutdownListeners(t.Context())
	res := resourcesOf([]*listener.Listener{mk("on", on, false), mk("off", off, true)}, nil,
		[]*cluster.Cluster{staticCluster(t, "tls", tlsBackend), staticCluster(t, "raw", rawBackend)})
	if _, err := p.apply(res); err != nil {
		t.Fatal(err)
	}
	hello := clientHello(t)
	for addr, want := range map[string]string{on: "tls-chain", off: "raw-chain"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(hello)
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != want {
			t.Errorf("ClientHello to %s: served by %q, want %q", addr, got, want)
		}
	}
}
