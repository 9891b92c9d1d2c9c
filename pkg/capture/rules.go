package capture

import (
	"slices"
)

// Chain names, as Istio's (tools/istio-iptables/pkg/constants).
const (
	ChainInbound    = "ISTIO_INBOUND"
	ChainInRedirect = "ISTIO_IN_REDIRECT"
	ChainOutput     = "ISTIO_OUTPUT"
	ChainRedirect   = "ISTIO_REDIRECT"
	ChainDrop       = "ISTIO_DROP"
)

// Rule is one iptables rule: its table and chain, and its parameters as
// iptables takes them ("-A CHAIN ..." or "-I CHAIN 1 ...").
type Rule struct {
	Table, Chain string
	Params       []string
}

// Rules are the rules of each IP family, in the order they are applied.
type Rules struct {
	V4, V6 []Rule
}

// builder collects rules per family, as Istio's IptablesRuleBuilder.
type builder struct {
	ipv6 bool
	r    Rules
}

func (b *builder) appendV4(chain, table string, params ...string) {
	b.r.V4 = append(b.r.V4, Rule{table, chain, append([]string{"-A", chain}, params...)})
}

func (b *builder) appendV6(chain, table string, params ...string) {
	if b.ipv6 {
		b.r.V6 = append(b.r.V6, Rule{table, chain, append([]string{"-A", chain}, params...)})
	}
}

func (b *builder) append(chain, table string, params ...string) {
	b.appendV4(chain, table, params...)
	b.appendV6(chain, table, params...)
}

func (b *builder) insertV4(chain, table, pos string, params ...string) {
	b.r.V4 = append(b.r.V4, Rule{table, chain, append([]string{"-I", chain, pos}, params...)})
}

func (b *builder) insertV6(chain, table, pos string, params ...string) {
	if b.ipv6 {
		b.r.V6 = append(b.r.V6, Rule{table, chain, append([]string{"-I", chain, pos}, params...)})
	}
}

// versionSpecific stands for the family's address in a rule appended to
// both families (Istio's constants.IPVersionSpecific).
const versionSpecific = "\x00ip"

// appendVersioned is Istio's AppendVersionedRule.
func (b *builder) appendVersioned(v4, v6, chain, table string, params ...string) {
	sub := func(addr string) []string {
		out := slices.Clone(params)
		for i, p := range out {
			if p == versionSpecific {
				out[i] = addr
			}
		}
		return out
	}
	b.appendV4(chain, table, sub(v4)...)
	b.appendV6(chain, table, sub(v6)...)
}

// Build returns the rules istio-iptables installs for o in REDIRECT mode,
// in its order (run.go Run, without DNS capture, TPROXY and owner group
// filters, which sluice does not offer). o must be valid (Validate).
func Build(o Options) Rules {
	b := &builder{ipv6: o.EnableIPv6}
	if o.InterceptionMode == "NONE" {
		return b.r
	}
	gid := o.ProxyGID
	if gid == "" {
		gid = o.ProxyUID
	}
	v4Exclude, v6Exclude, _ := separateV4V6(o.OutboundIPRangesExclude)
	v4Include, v6Include, _ := separateV4V6(o.OutboundIPRangesInclude)

	for _, nic := range split(o.ExcludeInterfaces) {
		b.append("PREROUTING", "nat", "-i", nic, "-j", "RETURN")
		b.append("OUTPUT", "nat", "-o", nic, "-j", "RETURN")
	}
	for _, nic := range split(o.RerouteVirtualInterfaces) {
		b.insertV4("PREROUTING", "nat", "1", "-i", nic, "-j", "RETURN")
		b.insertV6("PREROUTING", "nat", "1", "-i", nic, "-j", "RETURN")
	}
	if o.DropInvalid {
		b.append("PREROUTING", "mangle", "-m", "conntrack", "--ctstate", "INVALID", "-j", ChainDrop)
		b.append(ChainDrop, "mangle", "-j", "DROP")
	}
	b.append(ChainInbound, "nat", "-p", "tcp", "--dport", o.InboundTunnelPort, "-j", "RETURN")
	b.append(ChainRedirect, "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", o.ProxyPort)
	b.append(ChainInRedirect, "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", o.InboundCapturePort)
	b.inbound(o)
	b.append("OUTPUT", "nat", "-j", ChainOutput)
	for _, port := range split(o.OutboundPortsExclude) {
		b.append(ChainOutput, "nat", "-p", "tcp", "--dport", port, "-j", "RETURN")
		b.append(ChainOutput, "nat", "-p", "udp", "--dport", port, "-j", "RETURN")
	}
	// 127.0.0.6 / ::6: the inbound passthrough cluster's bind address.
	b.appendVersioned("127.0.0.6/32", "::6/128", ChainOutput, "nat", "-o", "lo", "-s", versionSpecific, "-j", "RETURN")
	loopbackIncluded := v4Include.loopback || v6Include.loopback
	for _, owner := range []struct{ flag, ids string }{{"--uid-owner", o.ProxyUID}, {"--gid-owner", gid}} {
		for _, id := range split(owner.ids) {
			b.ownerRules(o, owner.flag, id, loopbackIncluded)
		}
	}
	// Envoy-aware apps and container-to-container traffic over localhost.
	b.appendVersioned(o.HostIPv4LoopbackCidr, "::1/128", ChainOutput, "nat", "-d", versionSpecific, "-j", "RETURN")
	for _, c := range v4Exclude.cidrs {
		b.appendV4(ChainOutput, "nat", "-d", c.String(), "-j", "RETURN")
	}
	for _, c := range v6Exclude.cidrs {
		b.appendV6(ChainOutput, "nat", "-d", c.String(), "-j", "RETURN")
	}
	for _, port := range split(o.OutboundPortsInclude) {
		b.append(ChainOutput, "nat", "-p", "tcp", "--dport", port, "-j", ChainRedirect)
	}
	b.outboundInclude(v4Include, o, b.appendV4, b.insertV4)
	b.outboundInclude(v6Include, o, b.appendV6, b.insertV6)
	return b.r
}

// inbound is Istio's handleInboundPortsInclude for REDIRECT.
func (b *builder) inbound(o Options) {
	if o.InboundPortsInclude == "" {
		return
	}
	b.append("PREROUTING", "nat", "-p", "tcp", "-j", ChainInbound)
	if o.InboundPortsInclude == "*" {
		for _, port := range split(o.InboundPortsExclude) {
			b.append(ChainInbound, "nat", "-p", "tcp", "--dport", port, "-j", "RETURN")
		}
		b.append(ChainInbound, "nat", "-p", "tcp", "-j", ChainInRedirect)
		return
	}
	for _, port := range split(o.InboundPortsInclude) {
		b.append(ChainInbound, "nat", "-p", "tcp", "--dport", port, "-j", ChainInRedirect)
	}
}

// ownerRules are the three rules per proxy uid or gid: the proxy calling
// its own workload through a service VIP goes to the inbound port; other
// loopback traffic is left alone (unless a loopback range is included);
// the proxy's other traffic is never captured (no loop).
func (b *builder) ownerRules(o Options, flag, id string, loopbackIncluded bool) {
	b.appendVersioned(o.HostIPv4LoopbackCidr, "::1/128", ChainOutput, "nat",
		"-o", "lo", "!", "-d", versionSpecific, "-p", "tcp", "!", "--dport", o.InboundTunnelPort,
		"-m", "owner", flag, id, "-j", ChainInRedirect)
	if !loopbackIncluded {
		b.append(ChainOutput, "nat", "-o", "lo", "-m", "owner", "!", flag, id, "-j", "RETURN")
	}
	b.append(ChainOutput, "nat", "-m", "owner", flag, id, "-j", "RETURN")
}

// outboundInclude is Istio's handleOutboundIncludeRules for one family.
func (b *builder) outboundInclude(r networkRange, o Options,
	appendRule func(chain, table string, params ...string), insert func(chain, table, pos string, params ...string)) {
	switch {
	case r.wildcard:
		appendRule(ChainOutput, "nat", "-j", ChainRedirect)
		for _, nic := range split(o.RerouteVirtualInterfaces) {
			insert("PREROUTING", "nat", "1", "-i", nic, "-j", ChainRedirect)
		}
	case len(r.cidrs) > 0:
		for _, c := range r.cidrs {
			for _, nic := range split(o.RerouteVirtualInterfaces) {
				insert("PREROUTING", "nat", "1", "-i", nic, "-d", c.String(), "-j", ChainRedirect)
			}
			appendRule(ChainOutput, "nat", "-d", c.String(), "-j", ChainRedirect)
		}
	}
}
