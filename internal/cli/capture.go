package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-mesh/sluice/pkg/capture"
)

func init() { register(newCaptureCommand) }

func newCaptureCommand() *cobra.Command {
	o := capture.Defaults()
	var (
		dryRun, cleanup, dualStack, ambient bool
		ipv6                                string
		backend                             string
	)
	cmd := &cobra.Command{
		Use:     "capture [-p 15001] [-z 15006] [-u 1337] [-m REDIRECT] [-i CIDRS] [-x CIDRS] [-b PORTS] [-d PORTS] [-q PORTS] [-o PORTS] [-c NICS]",
		Aliases: []string{"iptables"},
		Short:   "Redirect this network namespace's TCP through the sidecar with iptables, as Istio's istio-init",
		Long: `sluice capture installs the iptables rules Istio's istio-iptables installs in a pod
(REDIRECT mode, the same flags): outbound TCP is redirected to the sidecar's
outbound listener (-p, 15001), inbound TCP to its inbound listener (-z, 15006);
the proxy's own traffic (-u/-g, 1337), loopback, the HBONE port (15008) and the
excluded ports, ranges and interfaces are not. The sidecar reads each
connection's original destination (SO_ORIGINAL_DST). Rules are applied with
iptables-restore --noflush, legacy or nft backend (--iptables-backend auto picks
the one already holding rules, else nft). Any capture rules already there are
removed first; --cleanup only removes them. --dry-run prints the
iptables-restore input instead. Run it as root (or with NET_ADMIN) in the
pod's network namespace: the injected pod's capture init container does.

--ambient installs istio-cni's in-pod rules for the node proxy instead
(sluice proxy --type ztunnel listens inside the pod): outbound TCP to 15001,
inbound TCP other than HBONE (15008) to 15006, the node proxy's own sockets
(mark 0x539) let through, and the mark rule and local route that bring the
app's replies to connections the node proxy made from a client's address back
to it. -k names virtual interfaces whose inbound is treated as outbound; the
sidecar flags do not apply.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch ipv6 {
			case "auto":
				v6, err := capture.DetectIPv6(dualStack)
				if err != nil {
					return fmt.Errorf("capture: %w", err)
				}
				o.EnableIPv6 = v6 || dualStack
			case "true", "false":
				o.EnableIPv6 = ipv6 == "true"
			default:
				return fmt.Errorf("capture: --ipv6 %q: must be auto, true or false", ipv6)
			}
			if ambient {
				return runAmbientCapture(cmd, o, ambientRun{dryRun: dryRun, cleanup: cleanup, backend: backend})
			}
			if cleanup {
				return capture.Remove(cmd.Context(), capture.Backend(backend), o.EnableIPv6)
			}
			if err := o.Validate(); err != nil {
				return fmt.Errorf("capture: %w", err)
			}
			if dryRun {
				rules := capture.Build(o)
				fmt.Fprint(cmd.OutOrStdout(), capture.Restore(rules.V4))
				if o.EnableIPv6 {
					fmt.Fprint(cmd.OutOrStdout(), "# ip6tables-restore\n"+capture.Restore(rules.V6))
				}
				return nil
			}
			if err := capture.Apply(cmd.Context(), o, capture.Backend(backend)); err != nil {
				return fmt.Errorf("capture: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.ProxyPort, "envoy-port", "p", o.ProxyPort, "port all outbound TCP is redirected to")
	f.StringVarP(&o.InboundCapturePort, "inbound-capture-port", "z", o.InboundCapturePort, "port all inbound TCP is redirected to")
	f.StringVarP(&o.InboundTunnelPort, "inbound-tunnel-port", "e", o.InboundTunnelPort, "inbound port never redirected (HBONE)")
	f.StringVarP(&o.ProxyUID, "proxy-uid", "u", o.ProxyUID, "comma separated UIDs whose traffic is not captured (the proxy's)")
	f.StringVarP(&o.ProxyGID, "proxy-gid", "g", "", "comma separated GIDs whose traffic is not captured (default: the UIDs)")
	f.StringVarP(&o.InterceptionMode, "istio-inbound-interception-mode", "m", o.InterceptionMode, "REDIRECT (TPROXY is not supported; NONE installs nothing)")
	f.StringVarP(&o.InboundPortsInclude, "istio-inbound-ports", "b", o.InboundPortsInclude, `inbound ports redirected, "*" for all, "" for none`)
	f.StringVarP(&o.InboundPortsExclude, "istio-local-exclude-ports", "d", "", `inbound ports not redirected (with -b "*")`)
	f.StringVarP(&o.OutboundIPRangesInclude, "istio-service-cidr", "i", o.OutboundIPRangesInclude, `outbound CIDRs redirected, "*" for all, "" for none`)
	f.StringVarP(&o.OutboundIPRangesExclude, "istio-service-exclude-cidr", "x", "", "outbound CIDRs not redirected")
	f.StringVarP(&o.OutboundPortsInclude, "istio-outbound-ports", "q", "", "outbound ports always redirected")
	f.StringVarP(&o.OutboundPortsExclude, "istio-local-outbound-ports-exclude", "o", "", "outbound ports not redirected")
	f.StringVarP(&o.ExcludeInterfaces, "istio-exclude-interfaces", "c", "", "interfaces whose traffic is not captured")
	f.StringVarP(&o.RerouteVirtualInterfaces, "kube-virt-interfaces", "k", "", "interfaces whose inbound traffic is treated as outbound")
	f.BoolVar(&o.DropInvalid, "drop-invalid", false, "drop packets conntrack finds INVALID")
	f.BoolVar(&dualStack, "dual-stack", false, "IPv4 and IPv6 rules")
	f.StringVar(&ipv6, "ipv6", "auto", "build ip6tables rules: auto (the first non-loopback address is IPv6, or --dual-stack), true, false")
	f.BoolVarP(&dryRun, "dry-run", "n", false, "print the iptables-restore input, change nothing")
	f.BoolVar(&ambient, "ambient", false, "install istio-cni's in-pod rules for the node proxy (ambient mode) instead of the sidecar's")
	f.BoolVar(&cleanup, "cleanup", false, "remove the capture rules and chains, install nothing")
	f.StringVar(&backend, "iptables-backend", "auto", "auto, legacy or nft")
	return cmd
}

type ambientRun struct {
	dryRun, cleanup bool
	backend         string
}

// ambientFlags are the capture flags that mean something with --ambient.
var ambientFlags = map[string]bool{"ambient": true, "kube-virt-interfaces": true, "dual-stack": true, "ipv6": true,
	"dry-run": true, "cleanup": true, "iptables-backend": true, "log-level": true, "log-json": true}

// runAmbientCapture installs (or removes, or prints) the in-pod capture.
func runAmbientCapture(cmd *cobra.Command, o capture.Options, r ambientRun) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !ambientFlags[f.Name] && err == nil {
			err = fmt.Errorf("capture: --%s does not apply with --ambient (the in-pod rules have no such setting)", f.Name)
		}
	})
	if err != nil {
		return err
	}
	in := capture.DefaultInpodOptions()
	in.EnableIPv6 = o.EnableIPv6
	for _, v := range strings.Split(o.RerouteVirtualInterfaces, ",") {
		if v = strings.TrimSpace(v); v != "" {
			in.VirtualInterfaces = append(in.VirtualInterfaces, v)
		}
	}
	switch {
	case r.cleanup:
		return capture.RemoveInpod(cmd.Context(), capture.Backend(r.backend), in.EnableIPv6)
	case r.dryRun:
		rules := capture.BuildInpod(in)
		fmt.Fprint(cmd.OutOrStdout(), capture.Restore(rules.V4))
		if in.EnableIPv6 {
			fmt.Fprint(cmd.OutOrStdout(), "# ip6tables-restore\n"+capture.Restore(rules.V6))
		}
		return nil
	}
	if err := capture.ApplyInpod(cmd.Context(), in, capture.Backend(r.backend)); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}
