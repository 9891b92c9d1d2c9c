package dataplane

import (
	"net/netip"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func captureListener(t *testing.T, name, ip string, port uint32) *listener.Listener {
	l := matchListener(namedChain(t, name, nil))
	l.Name = name
	l.Address = &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: ip, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}
	return l
}

// TestCaptureCompile: use_original_dst implies the original_dst filter
// and the hand-off; the listed filter alone restores without handing
// off; bind_to_port false is kept unbound; what capture does not
// implement (transparent: TPROXY, a named unbound address) is refused.
func TestCaptureCompile(t *testing.T) {
	outbound := captureListener(t, "virtualOutbound", "0.0.0.0", 15001)
	outbound.UseOriginalDst = wrapperspb.Bool(true)
	inbound := captureListener(t, "virtualInbound", "0.0.0.0", 15006)
	od, _ := anypb.New(&originaldst.OriginalDst{})
	inbound.ListenerFilters = []*listener.ListenerFilter{{Name: OriginalDstName, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: od}}}
	port := captureListener(t, "0.0.0.0_8080", "0.0.0.0", 8080)
	port.BindToPort = wrapperspb.Bool(false)
	for _, c := range []struct {
		l                             *listener.Listener
		unbound, originalDst, handOff bool
	}{
		{outbound, false, true, true},
		{inbound, false, true, false},
		{port, true, false, false},
	} {
		got, err := compileListener(c.l, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.l.Name, err)
		}
		if got.Unbound != c.unbound || got.OriginalDst != c.originalDst || got.HandOff != c.handOff {
			t.Errorf("%s: unbound %v original_dst %v hand-off %v, want %v %v %v", c.l.Name,
				got.Unbound, got.OriginalDst, got.HandOff, c.unbound, c.originalDst, c.handOff)
		}
	}
	transparent := captureListener(t, "t", "0.0.0.0", 15001)
	transparent.Transparent = wrapperspb.Bool(true)
	named := captureListener(t, "n", "localhost", 8080)
	named.BindToPort = wrapperspb.Bool(false)
	twice := captureListener(t, "twice", "0.0.0.0", 15006)
	twice.ListenerFilters = []*listener.ListenerFilter{{Name: OriginalDstName}, {Name: OriginalDstName}}
	for _, c := range []struct {
		l    *listener.Listener
		want string
	}{
		{transparent, "transparent: not supported (transparent is TPROXY interception"},
		{named, "bind_to_port false needs an IP address"},
		{twice, "listed twice"},
	} {
		if _, err := compileListener(c.l, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.l.Name, err, c.want)
		}
	}
}

// TestListenerFor: a restored destination finds the listener at that
// ip:port, else the wildcard of its family on its port, else none (the
// receiving listener serves it); two listeners on one address are refused.
func TestListenerFor(t *testing.T) {
	rt := &Runtime{Listeners: map[string]*Listener{}}
	for _, l := range []*listener.Listener{
		captureListener(t, "virtualOutbound", "0.0.0.0", 15001),
		captureListener(t, "0.0.0.0_8080", "0.0.0.0", 8080),
		captureListener(t, "10.0.0.5_8080", "10.0.0.5", 8080),
		captureListener(t, "[::]_9090", "::", 9090),
		captureListener(t, "internal-ish", "127.0.0.1", 0),
	} {
		c, err := compileListener(l, nil)
		if err != nil {
			t.Fatal(err)
		}
		rt.Listeners[l.Name] = c
	}
	if err := rt.indexListeners(); err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{
		"10.0.0.5:8080":          "10.0.0.5_8080",
		"10.0.0.6:8080":          "0.0.0.0_8080",
		"[::ffff:10.0.0.6]:8080": "0.0.0.0_8080",
		"10.0.0.6:15001":         "virtualOutbound",
		"[fd00::1]:9090":         "[::]_9090",
		"10.0.0.6:9090":          "", // [::] is not IPv4's wildcard (Envoy: v6only unless ipv4_compat)
		"[fd00::1]:8080":         "",
		"10.0.0.6:7000":          "",
	} {
		got := ""
		if l := rt.ListenerFor(netip.MustParseAddrPort(dst)); l != nil {
			got = l.Name
		}
		if got != want {
			t.Errorf("%s: listener %q, want %q", dst, got, want)
		}
	}
	dup, _ := compileListener(captureListener(t, "dup", "0.0.0.0", 8080), nil)
	rt.Listeners["dup"] = dup
	if err := rt.indexListeners(); err == nil || !strings.Contains(err.Error(), "same address") {
		t.Errorf("two listeners on 0.0.0.0:8080: err %v, want a refusal", err)
	}
}

// TestUpstreamBindConfig: a cluster's upstream_bind_config source address
// binds its connections; what is not supported is refused by name.
func TestUpstreamBindConfig(t *testing.T) {
	src := func(addr string, port uint32) *core.SocketAddress {
		return &core.SocketAddress{Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}
	}
	ip, err := bindSource(&core.BindConfig{SourceAddress: src("127.0.0.6", 0)})
	if err != nil || ip != netip.MustParseAddr("127.0.0.6") {
		t.Errorf("127.0.0.6: %v %v", ip, err)
	}
	for _, c := range []struct {
		bc   *core.BindConfig
		want string
	}{
		{&core.BindConfig{SourceAddress: src("127.0.0.6", 0), Freebind: wrapperspb.Bool(true)}, "freebind: not supported"},
		{&core.BindConfig{SourceAddress: src("127.0.0.6", 40000)}, "port_value 40000"},
		{&core.BindConfig{SourceAddress: src("localhost", 0)}, "source_address"},
		{&core.BindConfig{}, "source_address: required"},
	} {
		if _, err := bindSource(c.bc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.bc, err, c.want)
		}
	}
}

// TestFilterDisabled: a listener filter's filter_disabled compiles to a
// predicate on the destination port with Envoy's rules, in the shapes
// Istio's virtual inbound listener gives its inspectors
// (listenerPredicateExcludePorts: or_match of [p, p+1) ranges;
// listenerPredicateIncludePorts: not_match of that).
func TestFilterDisabled(t *testing.T) {
	port := func(p int32) *listener.ListenerFilterChainMatchPredicate {
		return &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_DestinationPortRange{
			DestinationPortRange: &typev3.Int32Range{Start: p, End: p + 1}}}
	}
	exclude := &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_OrMatch{
		OrMatch: &listener.ListenerFilterChainMatchPredicate_MatchSet{Rules: []*listener.ListenerFilterChainMatchPredicate{port(3306), port(9000)}}}}
	include := &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: exclude}}
	l := matchListener(namedChain(t, "a", nil))
	l.ListenerFilters = []*listener.ListenerFilter{{Name: TLSInspectorName, FilterDisabled: exclude}, {Name: HTTPInspectorName, FilterDisabled: include}}
	got, err := compileListener(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[uint32][2]bool{3306: {true, false}, 9000: {true, false}, 9001: {false, true}, 80: {false, true}} {
		if tls, http := got.Inspector.Disabled.Match(p), got.HTTPInspector.Disabled.Match(p); tls != want[0] || http != want[1] {
			t.Errorf("port %d: tls_inspector disabled %v, http_inspector disabled %v, want %v", p, tls, http, want)
		}
	}
	and := &listener.ListenerFilterChainMatchPredicate{Rule: &listener.ListenerFilterChainMatchPredicate_AndMatch{
		AndMatch: &listener.ListenerFilterChainMatchPredicate_MatchSet{Rules: []*listener.ListenerFilterChainMatchPredicate{
			{Rule: &listener.ListenerFilterChainMatchPredicate_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: 8000, End: 9000}}},
			{Rule: &listener.ListenerFilterChainMatchPredicate_AnyMatch{AnyMatch: true}}}}}}
	pr, err := compilePredicate(and)
	if err != nil || !pr.Match(8000) || pr.Match(9000) || (*PortPredicate)(nil).Match(1) {
		t.Errorf("and_match of [8000, 9000) and any: %v", err)
	}
}
