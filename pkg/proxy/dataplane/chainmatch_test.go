package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// namedChain is a plaintext HCM chain whose stat prefix is id, matched by m.
func namedChain(t *testing.T, id string, m *listener.FilterChainMatch) *listener.FilterChain {
	t.Helper()
	h := baseHCM()
	h.StatPrefix = id
	a, err := anypb.New(h)
	if err != nil {
		t.Fatal(err)
	}
	return &listener.FilterChain{FilterChainMatch: m, Filters: []*listener.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}}}
}

func matchListener(chains ...*listener.FilterChain) *listener.Listener {
	return &listener.Listener{Name: "l", Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15006}}}}, FilterChains: chains}
}

var istioALPN = []string{"istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

// TestSelectAsEnvoy: chains are chosen as Envoy's filter chain manager
// chooses them: destination port (exact, else any), server name (exact,
// longest wildcard, none; no fallback once a name matched), transport
// protocol (exact, else none), application protocol (the client's first
// listed present, else none); no match selects nothing.
func TestSelectAsEnvoy(t *testing.T) {
	l, err := compileListener(matchListener(
		namedChain(t, "mtls", &listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: istioALPN}),
		namedChain(t, "plain", &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}),
		namedChain(t, "tls-other", &listener.FilterChainMatch{TransportProtocol: "tls"}),
		namedChain(t, "port9080", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "raw_buffer"}),
		namedChain(t, "exact", &listener.FilterChainMatch{ServerNames: []string{"www.example.com"}, TransportProtocol: "tls"}),
		namedChain(t, "wild", &listener.FilterChainMatch{ServerNames: []string{"*.example.com"}}),
		namedChain(t, "wild-long", &listener.FilterChainMatch{ServerNames: []string{"*.a.example.com"}}),
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Inspector == nil || l.Inspector.Timeout != 15*time.Second || l.Inspector.MaxHelloSize != 16<<10 {
		t.Fatalf("inspector %+v: Envoy injects one with its defaults when chains match on tls", l.Inspector)
	}
	tlsIn := func(sni string, alpn ...string) MatchInput {
		return MatchInput{DestinationPort: 15006, ServerName: sni, Transport: TransportTLS, ALPN: alpn}
	}
	for _, c := range []struct {
		name string
		in   MatchInput
		want string
	}{
		{"mTLS from a sidecar", tlsIn("outbound_.9080_._.reviews", "istio-peer-exchange", "istio"), "mtls"},
		{"client ALPN order", tlsIn("", "h2", "istio-h2"), "mtls"},
		{"TLS without istio ALPN", tlsIn("", "h2"), "tls-other"},
		{"plaintext", MatchInput{DestinationPort: 15006, Transport: TransportRawBuffer}, "plain"},
		{"plaintext on port 9080", MatchInput{DestinationPort: 9080, Transport: TransportRawBuffer}, "port9080"},
		{"TLS on port 9080 falls back to port 0", MatchInput{DestinationPort: 9080, Transport: TransportTLS}, "tls-other"},
		{"exact name", tlsIn("www.example.com"), "exact"},
		{"exact name, no tls chain under it", MatchInput{ServerName: "www.example.com", Transport: TransportRawBuffer}, ""},
		{"wildcard", tlsIn("api.example.com"), "wild"},
		{"longest wildcard", tlsIn("x.a.example.com"), "wild-long"},
		{"deeper name", tlsIn("x.y.example.com"), "wild"},
		{"bare suffix is not a wildcard match", tlsIn("example.com", "istio"), "mtls"},
	} {
		got := l.Select(&c.in)
		id := ""
		if got != nil {
			id = got.StatPrefix
		}
		if id != c.want {
			t.Errorf("%s: chain %q, want %q", c.name, id, c.want)
		}
	}

	strict, err := compileListener(matchListener(
		namedChain(t, "mtls", &listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: istioALPN})), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := strict.Select(&MatchInput{Transport: TransportRawBuffer}); c != nil {
		t.Errorf("STRICT: plaintext matched chain %q; a connection matching no chain is closed", c.StatPrefix)
	}
	withDefault := matchListener(namedChain(t, "mtls", &listener.FilterChainMatch{TransportProtocol: "tls"}))
	withDefault.DefaultFilterChain = namedChain(t, "default", nil)
	d, err := compileListener(withDefault, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Select(&MatchInput{Transport: TransportRawBuffer}); c == nil || c.StatPrefix != "default" {
		t.Errorf("default_filter_chain not chosen for an unmatched connection: %v", c)
	}
}

// TestSelectDestinationIP: after the port, the longest prefix_ranges
// entry holding the destination IP chooses (no fallback to shorter ones
// or to chains without ranges once one holds it); an address no range
// holds takes the chains without ranges; IPv4-mapped addresses match
// IPv4 ranges.
func TestSelectDestinationIP(t *testing.T) {
	rng := func(a string, n uint32) []*core.CidrRange {
		return []*core.CidrRange{{AddressPrefix: a, PrefixLen: wrapperspb.UInt32(n)}}
	}
	l, err := compileListener(matchListener(
		namedChain(t, "pod-a", &listener.FilterChainMatch{PrefixRanges: append(rng("10.1.0.5", 32), rng("fd00::5", 128)...)}),
		namedChain(t, "subnet", &listener.FilterChainMatch{PrefixRanges: rng("10.1.0.0", 16)}),
		namedChain(t, "subnet-tls", &listener.FilterChainMatch{PrefixRanges: rng("10.1.0.0", 16), TransportProtocol: "tls"}),
		namedChain(t, "port-3306", &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(3306), PrefixRanges: rng("10.2.0.0", 16)}),
		namedChain(t, "rest", nil),
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip        string
		port      uint32
		transport string
		want      string
	}{
		{"10.1.0.5", 80, TransportRawBuffer, "pod-a"},
		{"::ffff:10.1.0.5", 80, TransportRawBuffer, "pod-a"},
		{"fd00::5", 80, TransportRawBuffer, "pod-a"},
		{"10.1.9.9", 80, TransportRawBuffer, "subnet"},
		{"10.1.9.9", 80, TransportTLS, "subnet-tls"},
		{"10.3.0.1", 80, TransportRawBuffer, "rest"},
		{"10.2.0.1", 3306, TransportRawBuffer, "port-3306"},
		{"10.2.0.1", 80, TransportRawBuffer, "rest"},
		{"10.9.0.1", 3306, TransportRawBuffer, "rest"}, // port 3306's tree has no match: port 0's
	} {
		in := MatchInput{DestinationIP: netip.MustParseAddr(c.ip), DestinationPort: c.port, Transport: c.transport}
		got := ""
		if ch := l.Select(&in); ch != nil {
			got = ch.StatPrefix
		}
		if got != c.want {
			t.Errorf("%s:%d %s: chain %q, want %q", c.ip, c.port, c.transport, got, c.want)
		}
	}
}

// TestChainMatchNACK: matching criteria sluice does not implement, two
// chains with the same rules, and listener filters other than the
// tls_inspector, the http_inspector and original_dst are refused by name
// (original_src: TPROXY interception, not implemented).
func TestChainMatchNACK(t *testing.T) {
	plain := func(id string) *listener.FilterChain { return namedChain(t, id, nil) }
	withFilters := matchListener(namedChain(t, "a", &listener.FilterChainMatch{TransportProtocol: "tls"}))
	withFilters.ListenerFilters = []*listener.ListenerFilter{{Name: "envoy.filters.listener.original_src"}}
	timeout := matchListener(namedChain(t, "a", &listener.FilterChainMatch{TransportProtocol: "tls"}))
	timeout.ListenerFiltersTimeout = durationpb.New(time.Second)
	timeout.ContinueOnListenerFiltersTimeout = true
	for _, c := range []struct {
		l    *listener.Listener
		want string
	}{
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{SourcePorts: []uint32{1}})), "source_ports: not supported"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{AddressSuffix: "0.0.0.1"})), "address_suffix: not supported"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{PrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(33)}}})), "prefix_ranges: 10.0.0.0/33"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{PrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.1/32"}}})), "prefix_ranges"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{PrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.7", PrefixLen: wrapperspb.UInt32(24)}}}),
			namedChain(t, "b", &listener.FilterChainMatch{PrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(24)}}})), "multiple filter chains with the same matching rules"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{SourceType: listener.FilterChainMatch_SAME_IP_OR_LOOPBACK})), "source_type: not supported"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{SourcePrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}})), "source_prefix_ranges: not supported"},
		{matchListener(plain("a"), plain("b")), "multiple filter chains with the same matching rules"},
		{matchListener(namedChain(t, "a", &listener.FilterChainMatch{ApplicationProtocols: []string{"x"}}),
			namedChain(t, "b", &listener.FilterChainMatch{ApplicationProtocols: []string{"y", "x"}})), "multiple filter chains with the same matching rules"},
		{withFilters, `listener filter "envoy.filters.listener.original_src" is not supported`},
	} {
		_, err := compileListener(c.l, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err %v, want %q", err, c.want)
		}
	}
	l, err := compileListener(timeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in := l.Inspector; in == nil || in.Timeout != time.Second || !in.ContinueOnTimeout {
		t.Errorf("listener_filters_timeout / continue_on_listener_filters_timeout not honoured: %+v", in)
	}
	if l, err := compileListener(matchListener(plain("only")), nil); err != nil || l.Inspector != nil {
		t.Errorf("a plaintext listener without name or protocol matches needs no inspector: %+v %v", l, err)
	}
}
