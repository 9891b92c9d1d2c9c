package dataplane

import (
	"fmt"
	"net/netip"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
)

// Transparent capture (iptables REDIRECT, as istio-init sets it up), in
// plain Envoy semantics:
//
//   - the original_dst listener filter (listed, or implied by
//     use_original_dst, Envoy's ListenerImpl::buildOriginalDstListenerFilter)
//     restores each accepted connection's local address to the destination
//     it was sent to before the REDIRECT (pkg/proxy/origdst): filter chain
//     matching, RBAC's destination and ORIGINAL_DST clusters see it;
//   - use_original_dst hands such a connection to the listener whose
//     address is that destination, the exact ip:port first, then the
//     wildcard of its family (0.0.0.0:port or [::]:port); with none, the
//     receiving listener's own chains serve it (Envoy's
//     ActiveTcpSocket::newConnection and
//     ConnectionHandlerImpl::getBalancedHandlerByAddress). A connection is
//     handed off at most once, so one whose destination is the receiving
//     listener itself is served there, never handed on again;
//   - bind_to_port false listeners are compiled and kept but not bound:
//     they only receive connections handed to them.
//
// TPROXY interception (transparent, the original_src filter) is not
// implemented: listenerFields refuses transparent by name.

// OriginalDstName is the original_dst listener filter's name.
const OriginalDstName = "envoy.filters.listener.original_dst"

// compileCapture reads bind_to_port and use_original_dst into out and
// records its address for the hand-off index.
func compileCapture(l *listener.Listener, sa *core.SocketAddress, out *Listener) error {
	out.Unbound = l.BindToPort != nil && !l.BindToPort.Value
	out.HandOff = l.GetUseOriginalDst().GetValue()
	out.OriginalDst = out.HandOff
	if sa.GetNamedPort() != "" {
		return fmt.Errorf("address: named_port: not supported")
	}
	if a, err := netip.ParseAddr(sa.Address); err == nil {
		out.addr = netip.AddrPortFrom(a.Unmap(), uint16(sa.GetPortValue()))
	} else if out.Unbound {
		// Envoy looks listeners up by IP address only.
		return fmt.Errorf("address %q: bind_to_port false needs an IP address: %w", sa.Address, err)
	}
	if out.Unbound && out.addr.Port() == 0 {
		return fmt.Errorf("address: bind_to_port false needs a port")
	}
	return nil
}

// checkOriginalDst accepts the original_dst filter's config: the
// message has no field Linux uses (traffic_direction is Windows').
func checkOriginalDst(lf *listener.ListenerFilter) error {
	tc := lf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	var cfg originaldst.OriginalDst
	if err := tc.UnmarshalTo(&cfg); err != nil {
		return fmt.Errorf("listener filter %q: %w", lf.Name, err)
	}
	if len(cfg.ProtoReflect().GetUnknown()) > 0 {
		return fmt.Errorf("listener filter %q: typed_config: fields unknown to envoy.extensions.filters.listener.original_dst.v3.OriginalDst: not supported", lf.Name)
	}
	return nil
}

// indexListeners builds the hand-off index of rt's socket listeners by
// address. Two listeners with one address are refused, as Envoy refuses
// them ("has duplicate address"); port 0 (bind any free port) is left out.
func (rt *Runtime) indexListeners() error {
	rt.byAddr = map[netip.AddrPort]*Listener{}
	for _, name := range rt.ListenerNames() {
		l := rt.Listeners[name]
		if l.Internal || !l.addr.IsValid() || l.addr.Port() == 0 {
			continue
		}
		if other := rt.byAddr[l.addr]; other != nil {
			return fmt.Errorf("listener %q: address %s: listener %q has the same address", name, l.addr, other.Name)
		}
		rt.byAddr[l.addr] = l
	}
	return nil
}

// ListenerFor is the listener a connection restored to dst is handed to:
// the one at dst exactly, else the wildcard listener of dst's family on
// its port; nil when none.
func (rt *Runtime) ListenerFor(dst netip.AddrPort) *Listener {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if l := rt.byAddr[dst]; l != nil {
		return l
	}
	any := netip.IPv4Unspecified()
	if dst.Addr().Is6() {
		any = netip.IPv6Unspecified()
	}
	return rt.byAddr[netip.AddrPortFrom(any, dst.Port())]
}
