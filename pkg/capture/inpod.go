package capture

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// Ambient in-pod capture, as istio-cni installs it in a pod's network
// namespace for ztunnel (cni/pkg/iptables/iptables.go AppendInpodRules,
// CreateInpodRules; cni/pkg/config/config.go for the ports and marks):
// the node proxy listens inside the pod, outbound TCP goes to its
// OutboundPort, inbound TCP other than HBONE (15008) to its plaintext
// inbound port, and its own sockets (marked InpodMark) pass. Connections
// it makes to the app from a client's address carry the mark; their
// replies get the connmark InpodTProxyMark and are routed back to it
// locally (ip rule fwmark 0x111/0xfff lookup 100, a local default route
// in table 100).
const (
	ChainInpodOutput     = "ISTIO_OUTPUT"
	ChainInpodPrerouting = "ISTIO_PRERT"

	inpodOutboundPort  = "15001"
	inpodInboundPort   = "15008"
	inpodPlaintextPort = "15006"
	inpodMark          = "0x539/0xfff"
	inpodTProxyMark    = "0x111/0xfff"
	inpodRestoreMask   = "0xffffffff"
	// InpodRouteTable and InpodRulePriority are istio-cni's
	// RouteTableInbound and the mark rule's preference.
	InpodRouteTable   = 100
	InpodRulePriority = 32764
)

// InpodOptions are istio-cni's in-pod settings sluice takes.
type InpodOptions struct {
	// HostProbeSNAT (169.254.7.127) and HostProbeV6SNAT are the addresses
	// istio-cni SNATs the node's health probes to; traffic from them is
	// not captured (the kubelet's probes reach the app directly).
	HostProbeSNAT, HostProbeV6SNAT netip.Addr
	// IngressMode captures no inbound (a pod that is a gateway).
	IngressMode bool
	// VirtualInterfaces: inbound on them is treated as outbound.
	VirtualInterfaces []string
	EnableIPv6        bool
}

// DefaultInpodOptions are istio-cni's defaults
// (HOST_PROBE_SNAT_IP, HOST_PROBE_V6_SNAT_IP).
func DefaultInpodOptions() InpodOptions {
	return InpodOptions{HostProbeSNAT: netip.MustParseAddr("169.254.7.127"),
		HostProbeV6SNAT: netip.MustParseAddr("fd16:9254:7127:1337:ffff:ffff:ffff:ffff")}
}

// BuildInpod is AppendInpodRules without DNS capture (sluice's node
// proxy has no DNS proxy, so nothing asks for it).
func BuildInpod(o InpodOptions) Rules {
	b := &builder{ipv6: o.EnableIPv6}
	b.append("PREROUTING", "mangle", "-j", ChainInpodPrerouting)
	b.append("OUTPUT", "mangle", "-j", ChainInpodOutput)
	b.append("OUTPUT", "nat", "-j", ChainInpodOutput)
	b.append("PREROUTING", "nat", "-j", ChainInpodPrerouting)
	for _, vif := range o.VirtualInterfaces {
		b.append(ChainInpodPrerouting, "nat", "-i", vif, "-p", "tcp", "-j", "REDIRECT", "--to-ports", inpodOutboundPort)
		b.append(ChainInpodPrerouting, "nat", "-i", vif, "-p", "tcp", "-j", "RETURN")
	}
	b.append(ChainInpodPrerouting, "mangle", "-m", "mark", "--mark", inpodMark, "-j", "CONNMARK", "--set-xmark", inpodTProxyMark)
	v4probe, v6probe := o.HostProbeSNAT.String(), o.HostProbeV6SNAT.String()
	if !o.IngressMode {
		b.appendVersioned(v4probe, v6probe, ChainInpodPrerouting, "nat", "-s", versionSpecific, "-p", "tcp", "-m", "tcp", "-j", "ACCEPT")
	}
	b.appendVersioned(v4probe, v6probe, ChainInpodOutput, "nat", "-d", versionSpecific, "-p", "tcp", "-m", "tcp", "-j", "ACCEPT")
	if !o.IngressMode {
		b.appendVersioned("127.0.0.1/32", "::1/128", ChainInpodPrerouting, "nat", "!", "-d", versionSpecific, "-p", "tcp",
			"!", "--dport", inpodInboundPort, "-m", "mark", "!", "--mark", inpodMark, "-j", "REDIRECT", "--to-ports", inpodPlaintextPort)
	}
	b.append(ChainInpodOutput, "mangle", "-m", "connmark", "--mark", inpodTProxyMark, "-j", "CONNMARK", "--restore-mark",
		"--nfmask", inpodRestoreMask, "--ctmask", inpodRestoreMask)
	b.append(ChainInpodOutput, "nat", "-p", "tcp", "-m", "mark", "--mark", inpodTProxyMark, "-j", "ACCEPT")
	b.appendVersioned("127.0.0.1/32", "::1/128", ChainInpodOutput, "nat", "!", "-d", versionSpecific, "-o", "lo", "-j", "ACCEPT")
	b.appendVersioned("127.0.0.1/32", "::1/128", ChainInpodOutput, "nat", "!", "-d", versionSpecific, "-p", "tcp",
		"-m", "mark", "!", "--mark", inpodMark, "-j", "REDIRECT", "--to-ports", inpodOutboundPort)
	return b.r
}

// ApplyInpod installs the in-pod capture in the current network
// namespace: the mark rule and local route first (istio-cni's
// addLoopbackRoute, addInpodMarkIPRule), then the rules, replacing any
// capture there.
func ApplyInpod(ctx context.Context, o InpodOptions, b Backend) error {
	for _, v6 := range []bool{false, true} {
		if v6 && !o.EnableIPv6 {
			continue
		}
		if err := inpodRouting(ctx, v6, true); err != nil {
			return err
		}
	}
	return applyRules(ctx, BuildInpod(o), b, o.EnableIPv6)
}

// RemoveInpod undoes ApplyInpod.
func RemoveInpod(ctx context.Context, b Backend, ipv6 bool) error {
	if err := Remove(ctx, b, ipv6); err != nil {
		return err
	}
	for _, v6 := range []bool{false, true} {
		if v6 && !ipv6 {
			continue
		}
		if err := inpodRouting(ctx, v6, false); err != nil {
			return err
		}
	}
	return nil
}

// inpodRouting adds (or deletes) "ip rule fwmark 0x111/0xfff pref 32764
// lookup 100" and "ip route local <any> dev lo table 100".
func inpodRouting(ctx context.Context, v6, add bool) error {
	fam, any := "-4", "0.0.0.0/0"
	if v6 {
		fam, any = "-6", "::/0"
	}
	table, pref := strconv.Itoa(InpodRouteTable), strconv.Itoa(InpodRulePriority)
	rule := []string{fam, "rule", "add", "fwmark", "0x111/0xfff", "pref", pref, "lookup", table}
	route := []string{fam, "route", "replace", "local", any, "dev", "lo", "table", table}
	steps := [][]string{rule, route}
	if !add {
		rule[2], route[2] = "del", "del"
		steps = [][]string{route, rule}
	}
	for _, s := range steps {
		out, err := exec.CommandContext(ctx, "ip", s...).CombinedOutput()
		msg := strings.TrimSpace(string(out))
		if err != nil && add && strings.Contains(msg, "File exists") {
			continue // already there (istio-cni ignores EEXIST)
		}
		if err != nil && !add && (strings.Contains(msg, "No such") || strings.Contains(msg, "not exist")) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(s, " "), err, msg)
		}
	}
	return nil
}
