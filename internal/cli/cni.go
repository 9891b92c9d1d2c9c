package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/kube/cniplugin"
)

func init() { register(newCNICommand) }

func newCNICommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cni",
		Short: "Install or remove sluice's CNI plugin on a node (ambient mode, as istio-cni's install)",
		Long: `sluice cni install copies this binary into the node's CNI bin directory as
sluice-cni and chains it into the node's primary network configuration (the
first valid .conf/.conflist by name, as the container runtime picks it; a .conf
becomes a .conflist). The runtime then runs it for every pod sandbox after the
network plugin: it hands an ambient pod's network namespace to the node agent
in the node proxy (its socket, --agent-socket) and fails the pod's set-up when
the agent cannot be reached or refuses, so no ambient pod starts uncaptured.
Pods in --exclude-namespaces are passed through. sluice cni uninstall removes both.`,
	}
	var o cniplugin.InstallOptions
	var exclude string
	install := &cobra.Command{
		Use:  "install",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("cni install: %w", err)
			}
			o.Binary = self
			for _, ns := range strings.Split(exclude, ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					o.ExcludeNamespaces = append(o.ExcludeNamespaces, ns)
				}
			}
			path, err := cniplugin.Install(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "chained %s into %s\n", cniplugin.BinaryName, path)
			return nil
		},
	}
	uninstall := &cobra.Command{
		Use:  "uninstall",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cniplugin.Uninstall(o.ConfDir, o.BinDir)
		},
	}
	for _, c := range []*cobra.Command{install, uninstall} {
		c.Flags().StringVar(&o.ConfDir, "conf-dir", "/etc/cni/net.d", "the node's CNI configuration directory")
		c.Flags().StringVar(&o.BinDir, "bin-dir", "/opt/cni/bin", "the node's CNI bin directory")
	}
	install.Flags().StringVar(&o.AgentSocket, "agent-socket", cniplugin.DefaultSocket, "the node agent's socket (sluice proxy --type ztunnel)")
	install.Flags().StringVar(&exclude, "exclude-namespaces", "kube-system", "comma separated namespaces whose pods the plugin passes through")
	cmd.AddCommand(install, uninstall)
	return cmd
}
