package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
)

// Filter chain matching, as Envoy's filter chain manager does it
// (source/common/listener_manager/filter_chain_manager_impl.cc,
// findFilterChain and the findFilterChainFor* steps): the chains form a
// tree keyed, level by level, by destination port, server name, transport
// protocol and application protocol; at each level the most specific key
// present wins (an exact port, else port 0; an exact server name, else the
// longest "*.suffix" wildcard, else no name; the detected transport
// protocol, else none; the first of the client's ALPN protocols present,
// else none), and a connection with no chain at the end of that walk is
// closed (or gets the default_filter_chain). Between the port and the
// server name, the destination IP: the longest of the chains'
// prefix_ranges holding the connection's (restored) local address, else
// the chains without ranges (findFilterChainForDestinationIP; Istio
// matches headless services' endpoints so). address_suffix and the source
// criteria are not supported (NACKed by name).

// TransportRawBuffer and TransportTLS are the transport protocols a
// connection is detected as: "tls" when the tls_inspector found a
// ClientHello, else "raw_buffer" (Envoy's default).
const (
	TransportRawBuffer = "raw_buffer"
	TransportTLS       = "tls"
)

// MatchInput is what a connection is matched on: its destination port,
// and what the tls_inspector read from its ClientHello (nothing for
// plaintext).
type MatchInput struct {
	DestinationPort uint32
	// DestinationIP is the connection's local address (its original
	// destination when the listener restored it).
	DestinationIP netip.Addr
	// ServerName is the SNI, lower case, without a trailing dot.
	ServerName string
	// Transport is TransportTLS or TransportRawBuffer.
	Transport string
	// ALPN are the client's application protocols, in its order.
	ALPN []string
}

// chainTree is the compiled matching tree of one listener.
type chainTree struct {
	ports map[uint32]*ipLevel
}

// ipLevel is the destination IP step: the chains' prefix_ranges, looked
// up longest first, and the chains without ranges.
type ipLevel struct {
	prefixes map[netip.Prefix]*nameLevel
	// bits are the prefix lengths present, longest first.
	bits []int
	any  *nameLevel
}

type nameLevel struct {
	exact map[string]*transportLevel
	// wildcard is keyed by the suffix after "*" (".example.com").
	wildcard map[string]*transportLevel
	any      *transportLevel
}

type transportLevel struct {
	byProto map[string]*alpnLevel
	any     *alpnLevel
}

type alpnLevel struct {
	byProto map[string]*FilterChain
	any     *FilterChain
}

// Select returns the chain serving a connection with these properties, or
// nil when none matches (the connection is then closed, as in Envoy).
func (l *Listener) Select(in *MatchInput) *FilterChain {
	if l.tree == nil {
		if len(l.Chains) > 0 {
			return l.Chains[0] // built by hand (tests): the first chain
		}
		return nil
	}
	if c := l.tree.selectPort(in); c != nil {
		return c
	}
	return l.Default
}

func (t *chainTree) selectPort(in *MatchInput) *FilterChain {
	if in.DestinationPort != 0 {
		if il := t.ports[in.DestinationPort]; il != nil {
			if c := il.selectIP(in); c != nil {
				return c
			}
		}
	}
	if il := t.ports[0]; il != nil {
		return il.selectIP(in)
	}
	return nil
}

// selectIP takes the longest prefix holding the destination IP, without
// falling back to shorter ones or to the chains without ranges once one
// holds it (Envoy's LC trie lookup).
func (l *ipLevel) selectIP(in *MatchInput) *FilterChain {
	if ip := in.DestinationIP.Unmap(); ip.IsValid() {
		for _, b := range l.bits {
			if b > ip.BitLen() {
				continue
			}
			p, _ := ip.Prefix(b)
			if nl := l.prefixes[p]; nl != nil {
				return nl.selectName(in)
			}
		}
	}
	if l.any != nil {
		return l.any.selectName(in)
	}
	return nil
}

func (n *nameLevel) selectName(in *MatchInput) *FilterChain {
	sn := in.ServerName
	if tl := n.exact[sn]; tl != nil {
		return tl.selectTransport(in)
	}
	// "*.example.com" then "*.com" for "www.example.com".
	if len(n.wildcard) > 0 && len(sn) > 1 {
		for pos := strings.IndexByte(sn[1:], '.') + 1; pos > 0 && pos < len(sn)-1; {
			if tl := n.wildcard[sn[pos:]]; tl != nil {
				return tl.selectTransport(in)
			}
			next := strings.IndexByte(sn[pos+1:], '.')
			if next < 0 {
				break
			}
			pos += next + 1
		}
	}
	if n.any != nil {
		return n.any.selectTransport(in)
	}
	return nil
}

func (t *transportLevel) selectTransport(in *MatchInput) *FilterChain {
	if al := t.byProto[in.Transport]; al != nil {
		return al.selectALPN(in)
	}
	if t.any != nil {
		return t.any.selectALPN(in)
	}
	return nil
}

func (a *alpnLevel) selectALPN(in *MatchInput) *FilterChain {
	for _, p := range in.ALPN {
		if c := a.byProto[p]; c != nil {
			return c
		}
	}
	return a.any
}

// chainKey is where one chain sits in the tree.
type chainKey struct {
	port      uint32
	prefixes  []netip.Prefix
	names     []string
	transport string
	alpn      []string
}

// compileChainMatch reads a chain's filter_chain_match, NACKing the
// criteria the proxy does not implement by name.
func compileChainMatch(m *listener.FilterChainMatch) (chainKey, error) {
	var k chainKey
	if m == nil {
		return k, nil
	}
	var bad []string
	if m.AddressSuffix != "" || m.SuffixLen != nil {
		bad = append(bad, "address_suffix")
	}
	if len(m.DirectSourcePrefixRanges) > 0 {
		bad = append(bad, "direct_source_prefix_ranges")
	}
	if m.SourceType != listener.FilterChainMatch_ANY {
		bad = append(bad, "source_type")
	}
	if len(m.SourcePrefixRanges) > 0 {
		bad = append(bad, "source_prefix_ranges")
	}
	if len(m.SourcePorts) > 0 {
		bad = append(bad, "source_ports")
	}
	if len(bad) > 0 {
		return k, fmt.Errorf("filter_chain_match: %s: not supported", strings.Join(bad, ", "))
	}
	k.port = m.GetDestinationPort().GetValue()
	for _, r := range m.PrefixRanges {
		p, err := cidr(r)
		if err != nil {
			return k, fmt.Errorf("filter_chain_match: prefix_ranges: %w", err)
		}
		k.prefixes = append(k.prefixes, p)
	}
	for _, n := range m.ServerNames {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n == "*" {
			// Istio's sniHosts "*" (any name); Envoy has no such
			// wildcard, so it is taken as no server_names, as sluice's
			// SNI matching always did.
			k.names = nil
			break
		}
		if strings.Contains(n[min(1, len(n)):], "*") || strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.") {
			return k, fmt.Errorf("filter_chain_match: server_names %q: only a leading \"*.\" wildcard is allowed", n)
		}
		k.names = append(k.names, n)
	}
	k.transport = m.TransportProtocol
	k.alpn = m.ApplicationProtocols
	return k, nil
}

// buildTree puts every chain in the tree; two chains with the same
// matching rules are an error, as in Envoy.
func buildTree(chains []*FilterChain, keys []chainKey) (*chainTree, error) {
	t := &chainTree{ports: map[uint32]*ipLevel{}}
	for i, c := range chains {
		k := keys[i]
		il := t.ports[k.port]
		if il == nil {
			il = &ipLevel{prefixes: map[netip.Prefix]*nameLevel{}}
			t.ports[k.port] = il
		}
		for _, nl := range il.levels(k.prefixes) {
			names := k.names
			if len(names) == 0 {
				names = []string{""}
			}
			for _, n := range names {
				if err := nl.level(n).add(k, c); err != nil {
					return nil, fmt.Errorf("filter chain %d: %w", i, err)
				}
			}
		}
	}
	return t, nil
}

// levels returns (making them) the name levels of a chain's prefixes, or
// the one of the chains without ranges.
func (l *ipLevel) levels(prefixes []netip.Prefix) []*nameLevel {
	newLevel := func() *nameLevel {
		return &nameLevel{exact: map[string]*transportLevel{}, wildcard: map[string]*transportLevel{}}
	}
	if len(prefixes) == 0 {
		if l.any == nil {
			l.any = newLevel()
		}
		return []*nameLevel{l.any}
	}
	out := make([]*nameLevel, 0, len(prefixes))
	for _, p := range prefixes {
		nl := l.prefixes[p]
		if nl == nil {
			nl = newLevel()
			l.prefixes[p] = nl
			if !slices.Contains(l.bits, p.Bits()) {
				l.bits = append(l.bits, p.Bits())
				slices.SortFunc(l.bits, func(a, b int) int { return b - a })
			}
		}
		out = append(out, nl)
	}
	return out
}

// cidr is a CidrRange as the prefix it names (address bits past the
// length cleared, as Envoy's CidrRange does).
func cidr(r *core.CidrRange) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, err
	}
	ip = ip.Unmap()
	bits := ip.BitLen()
	if r.PrefixLen != nil {
		bits = int(r.GetPrefixLen().GetValue())
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s/%d: %w", r.GetAddressPrefix(), bits, err)
	}
	return p, nil
}

// level returns (making it) the transport level of server name n: "" for
// chains without names, "*.suffix" for wildcards, else an exact name.
func (n *nameLevel) level(name string) *transportLevel {
	m, key := n.exact, name
	switch {
	case name == "":
		if n.any == nil {
			n.any = &transportLevel{byProto: map[string]*alpnLevel{}}
		}
		return n.any
	case strings.HasPrefix(name, "*."):
		m, key = n.wildcard, name[1:]
	}
	tl := m[key]
	if tl == nil {
		tl = &transportLevel{byProto: map[string]*alpnLevel{}}
		m[key] = tl
	}
	return tl
}

func (t *transportLevel) add(k chainKey, c *FilterChain) error {
	a := t.any
	if k.transport != "" {
		a = t.byProto[k.transport]
	}
	if a == nil {
		a = &alpnLevel{byProto: map[string]*FilterChain{}}
		if k.transport != "" {
			t.byProto[k.transport] = a
		} else {
			t.any = a
		}
	}
	dup := fmt.Errorf("multiple filter chains with the same matching rules are defined")
	if len(k.alpn) == 0 {
		if a.any != nil {
			return dup
		}
		a.any = c
		return nil
	}
	for _, p := range k.alpn {
		if a.byProto[p] != nil {
			return dup
		}
		a.byProto[p] = c
	}
	return nil
}

// needsInspector is Envoy's rule for injecting the tls_inspector a
// listener did not list (listener_impl.cc): some chain matches on
// transport protocol "tls", or on server names or application protocols
// without a transport protocol.
func needsInspector(keys []chainKey) bool {
	for _, k := range keys {
		if k.transport == TransportTLS || k.transport == "" && (len(k.names) > 0 || len(k.alpn) > 0) {
			return true
		}
	}
	return false
}

// Inspector is a compiled envoy.filters.listener.tls_inspector with the
// listener's listener_filters_timeout.
type Inspector struct {
	// Timeout bounds the wait for the ClientHello (Envoy's
	// listener_filters_timeout, 15 s by default; 0 waits forever);
	// ContinueOnTimeout then goes on as plaintext instead of closing.
	Timeout           time.Duration
	ContinueOnTimeout bool
	// MaxHelloSize bounds the ClientHello read (16 KiB by default);
	// CloseOnParseError closes a connection whose ClientHello is too
	// large or malformed instead of taking it as plaintext.
	MaxHelloSize      int
	CloseOnParseError bool
	// Disabled is its filter_disabled: it does not run on the
	// connections it matches (nil: it always runs).
	Disabled *PortPredicate
}

// defaultListenerFiltersTimeout is Envoy's listener_filters_timeout default.
const defaultListenerFiltersTimeout = 15 * time.Second

// Listener filter names sluice implements.
const (
	TLSInspectorName  = "envoy.filters.listener.tls_inspector"
	HTTPInspectorName = "envoy.filters.listener.http_inspector"
)

// HTTPInspector is a compiled envoy.filters.listener.http_inspector
// (pkg/proxy/httpinspector): plaintext connections are sniffed for an
// HTTP/1.x request line or the h2c preface, which become the connection's
// application protocols for chain matching.
type HTTPInspector struct {
	// BeforeTLS is set when it is listed before the tls_inspector; it then
	// sees a ClientHello (not HTTP) and the tls_inspector runs after it.
	BeforeTLS bool
	// Timeout and ContinueOnTimeout are the listener's, as the
	// Inspector's: listener_filters_timeout bounds the listener filters
	// together.
	Timeout           time.Duration
	ContinueOnTimeout bool
	// Disabled is its filter_disabled (nil: it always runs).
	Disabled *PortPredicate
}

// compileInspector reads the listener's listener filters, in order: the
// tls_inspector and the http_inspector are supported (each at most once);
// anything else, and any field of theirs sluice does not honour, is NACKed.
func compileInspector(l *listener.Listener, needed bool) (*Inspector, *HTTPInspector, bool, error) {
	var in *Inspector
	var hi *HTTPInspector
	origDst := false
	for _, lf := range l.ListenerFilters {
		var disabled *PortPredicate
		if lf.FilterDisabled != nil {
			if lf.Name == OriginalDstName {
				return nil, nil, false, fmt.Errorf("listener filter %q: filter_disabled: not supported", lf.Name)
			}
			var err error
			if disabled, err = compilePredicate(lf.FilterDisabled); err != nil {
				return nil, nil, false, fmt.Errorf("listener filter %q: filter_disabled: %w", lf.Name, err)
			}
		}
		if lf.GetConfigDiscovery() != nil {
			return nil, nil, false, fmt.Errorf("listener filter %q: config_discovery: not supported", lf.Name)
		}
		switch {
		case lf.Name == TLSInspectorName && in == nil:
			var err error
			if in, err = compileTLSInspector(lf); err != nil {
				return nil, nil, false, err
			}
			in.Disabled = disabled
		case lf.Name == HTTPInspectorName && hi == nil:
			if err := checkHTTPInspector(lf); err != nil {
				return nil, nil, false, err
			}
			hi = &HTTPInspector{BeforeTLS: in == nil, Disabled: disabled}
		case lf.Name == OriginalDstName && !origDst:
			// Reads no bytes: where it is listed changes nothing
			// (capture.go); the proxy runs it first.
			if err := checkOriginalDst(lf); err != nil {
				return nil, nil, false, err
			}
			origDst = true
		case lf.Name == TLSInspectorName || lf.Name == HTTPInspectorName || lf.Name == OriginalDstName:
			return nil, nil, false, fmt.Errorf("listener filter %q: listed twice: not supported", lf.Name)
		default:
			return nil, nil, false, fmt.Errorf("listener filter %q is not supported", lf.Name)
		}
	}
	if in == nil && needed {
		in = &Inspector{MaxHelloSize: 16 << 10}
		if hi != nil {
			// The injected tls_inspector runs first. Order changes no
			// outcome: a ClientHello's first byte is no method and a
			// request's first byte no TLS record, so each inspector
			// gives up on the other's bytes at once.
			hi.BeforeTLS = false
		}
	}
	timeout := durationOr(l.ListenerFiltersTimeout, defaultListenerFiltersTimeout)
	if in != nil {
		in.Timeout, in.ContinueOnTimeout = timeout, l.ContinueOnListenerFiltersTimeout
	}
	if hi != nil {
		hi.Timeout, hi.ContinueOnTimeout = timeout, l.ContinueOnListenerFiltersTimeout
	}
	return in, hi, origDst, nil
}

func compileTLSInspector(lf *listener.ListenerFilter) (*Inspector, error) {
	var cfg tlsinspector.TlsInspector
	if tc := lf.GetTypedConfig(); tc != nil {
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return nil, fmt.Errorf("listener filter %q: %w", lf.Name, err)
		}
	}
	if cfg.GetEnableJa3Fingerprinting().GetValue() || cfg.GetEnableJa4Fingerprinting().GetValue() {
		return nil, fmt.Errorf("listener filter %q: enable_ja3_fingerprinting, enable_ja4_fingerprinting: not supported", lf.Name)
	}
	in := &Inspector{MaxHelloSize: 16 << 10, CloseOnParseError: cfg.CloseConnectionOnClientHelloParsingErrors}
	if v := cfg.GetMaxClientHelloSize(); v != nil {
		in.MaxHelloSize = int(v.Value)
	}
	return in, nil
}

// checkHTTPInspector accepts the http_inspector's config: HttpInspector
// has no fields; a typed_config of another type, or carrying fields this
// version does not know, is refused.
func checkHTTPInspector(lf *listener.ListenerFilter) error {
	tc := lf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	var cfg httpinspector.HttpInspector
	if err := tc.UnmarshalTo(&cfg); err != nil {
		return fmt.Errorf("listener filter %q: %w", lf.Name, err)
	}
	if len(cfg.ProtoReflect().GetUnknown()) > 0 {
		return fmt.Errorf("listener filter %q: typed_config: fields unknown to envoy.extensions.filters.listener.http_inspector.v3.HttpInspector: not supported", lf.Name)
	}
	return nil
}
