// Package capture builds and applies the iptables rules that redirect a
// pod's traffic through its sidecar, as Istio's istio-init does
// (tools/istio-iptables/pkg/capture/run.go, REDIRECT mode): outbound TCP
// to the proxy port (15001), inbound to the inbound capture port
// (15006), the proxy's own uid/gid, loopback and the excluded ports,
// ranges and interfaces left alone. Rules are built per IP family
// (rules.go), written in iptables-restore format as Istio's builder
// writes them (restore.go) and applied with iptables-restore --noflush,
// legacy or nft backend (apply.go).
package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Options are istio-iptables' flags sluice takes (the same letters on the
// command line, internal/cli/capture.go). Lists are comma separated as
// the flags give them; empty entries are dropped (Istio's config.Split).
type Options struct {
	// ProxyPort (-p) receives outbound TCP; InboundCapturePort (-z)
	// inbound; InboundTunnelPort (-e) is never redirected (HBONE, 15008).
	ProxyPort, InboundCapturePort, InboundTunnelPort string
	// ProxyUID (-u) and ProxyGID (-g): the proxy's traffic is not captured
	// (GID defaults to the UID, as Istio's).
	ProxyUID, ProxyGID string
	// InterceptionMode (-m): REDIRECT (TPROXY is refused, NONE installs
	// nothing).
	InterceptionMode string
	// InboundPortsInclude (-b, "*" for all), InboundPortsExclude (-d, with
	// "*" only).
	InboundPortsInclude, InboundPortsExclude string
	// OutboundIPRangesInclude (-i, "*" for all), OutboundIPRangesExclude
	// (-x), OutboundPortsInclude (-q), OutboundPortsExclude (-o).
	OutboundIPRangesInclude, OutboundIPRangesExclude string
	OutboundPortsInclude, OutboundPortsExclude       string
	// ExcludeInterfaces (-c): neither direction captured on them;
	// RerouteVirtualInterfaces (-k): their inbound treated as outbound.
	ExcludeInterfaces, RerouteVirtualInterfaces string
	// HostIPv4LoopbackCidr is Istio's ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR
	// (127.0.0.1/32).
	HostIPv4LoopbackCidr string
	// DropInvalid drops conntrack-INVALID packets (Istio's INVALID_DROP).
	DropInvalid bool
	// EnableIPv6 also builds ip6tables rules (Istio: when the pod's
	// address is IPv6, or dual stack).
	EnableIPv6 bool
}

// Defaults are istio-iptables' defaults as istio-init runs it.
func Defaults() Options {
	return Options{
		ProxyPort: "15001", InboundCapturePort: "15006", InboundTunnelPort: "15008",
		ProxyUID: "1337", InterceptionMode: "REDIRECT",
		OutboundIPRangesInclude: "*", InboundPortsInclude: "*",
		HostIPv4LoopbackCidr: "127.0.0.1/32",
	}
}

// split is Istio's config.Split: comma separated, spaces trimmed, empty
// entries dropped.
func split(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// networkRange is Istio's config.NetworkRange: a wildcard or CIDRs of one
// family, and whether one is a loopback range.
type networkRange struct {
	wildcard bool
	cidrs    []netip.Prefix
	loopback bool
}

// separateV4V6 is Istio's config.SeparateV4V6.
func separateV4V6(list string) (v4, v6 networkRange, err error) {
	if list == "*" {
		return networkRange{wildcard: true}, networkRange{wildcard: true}, nil
	}
	for _, r := range split(list) {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return v4, v6, err
		}
		nr := &v6
		if p.Addr().Is4() {
			nr = &v4
		}
		nr.cidrs = append(nr.cidrs, p)
		nr.loopback = nr.loopback || p.Addr().IsLoopback()
	}
	return v4, v6, nil
}

// Validate checks the options as istio-iptables' validation does, naming
// the flag of each bad value.
func (o *Options) Validate() error {
	switch o.InterceptionMode {
	case "REDIRECT", "NONE":
	case "TPROXY":
		return fmt.Errorf("-m TPROXY: not supported (REDIRECT capture only)")
	default:
		return fmt.Errorf("-m %q: must be REDIRECT, TPROXY or NONE", o.InterceptionMode)
	}
	for _, p := range []struct{ flag, v string }{{"-p", o.ProxyPort}, {"-z", o.InboundCapturePort}, {"-e", o.InboundTunnelPort}} {
		if err := checkPorts(p.v, false); err != nil || len(split(p.v)) != 1 {
			return fmt.Errorf("%s %q: not a port", p.flag, p.v)
		}
	}
	for _, p := range []struct{ flag, v string }{{"-b", o.InboundPortsInclude}, {"-d", o.InboundPortsExclude}, {"-q", o.OutboundPortsInclude}, {"-o", o.OutboundPortsExclude}} {
		if err := checkPorts(p.v, p.flag == "-b"); err != nil {
			return fmt.Errorf("%s %q: %w", p.flag, p.v, err)
		}
	}
	for _, id := range []struct{ flag, v string }{{"-u", o.ProxyUID}, {"-g", o.ProxyGID}} {
		for _, v := range split(id.v) {
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return fmt.Errorf("%s %q: not a numeric id", id.flag, v)
			}
		}
	}
	if _, _, err := separateV4V6(o.OutboundIPRangesInclude); err != nil {
		return fmt.Errorf("-i %q: %w", o.OutboundIPRangesInclude, err)
	}
	v4, _, err := separateV4V6(o.OutboundIPRangesExclude)
	if err != nil {
		return fmt.Errorf("-x %q: %w", o.OutboundIPRangesExclude, err)
	}
	if v4.wildcard {
		return fmt.Errorf("-x \"*\": invalid value for OUTBOUND_IP_RANGES_EXCLUDE")
	}
	if p, err := netip.ParsePrefix(o.HostIPv4LoopbackCidr); err != nil || !p.Addr().Is4() || !p.Addr().IsLoopback() {
		return fmt.Errorf("IPv4 loopback CIDR %q: must be an IPv4 loopback range", o.HostIPv4LoopbackCidr)
	}
	return nil
}

func checkPorts(v string, wildcard bool) error {
	if wildcard && v == "*" {
		return nil
	}
	for _, p := range split(v) {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("%q is not a port", p)
		}
	}
	return nil
}
