package cli

import (
	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/inspect"
)

func init() { register(newProxyConfigCommand) }

func newProxyConfigCommand() *cobra.Command {
	var addr, output string
	cmd := &cobra.Command{
		Use:     "proxy-config",
		Aliases: []string{"pc"},
		Short:   "Show a proxy's listeners, routes, clusters, endpoints or secrets, as istioctl proxy-config",
		Long: `proxy-config prints one kind of a connected proxy's config as istioctl proxy-config
does. Listeners, routes and clusters are the xDS the control plane last published to the
proxy (its /debug/config_dump); endpoints (with outlier detection's verdict) and secrets
(the workload certificate and the trust bundle's roots) are read from the proxy's admin
(/clusters, /certs). The proxy is named by node ID, as name.namespace (istioctl's pod.namespace),
or by name alone when one proxy has it. -o json or -o yaml prints the resources themselves.`,
	}
	cmd.PersistentFlags().StringVar(&addr, "address", "127.0.0.1:15014", "the control plane's --http-address")
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	kinds := []struct{ kind, short string }{
		{inspect.KindListeners, "ADDRESSES PORT MATCH DESTINATION, one row per filter chain"},
		{inspect.KindRoutes, "NAME VHOST NAME DOMAINS MATCH VIRTUAL SERVICE, one row per route"},
		{inspect.KindClusters, "SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE"},
		{inspect.KindEndpoints, "ENDPOINT STATUS OUTLIER CHECK CLUSTER, from the proxy's admin"},
		{inspect.KindSecrets, "RESOURCE NAME TYPE STATUS VALID CERT SERIAL NUMBER NOT AFTER NOT BEFORE, from the proxy's admin"},
		{inspect.KindAll, "every kind above"},
	}
	for _, k := range kinds {
		kind := k.kind
		cmd.AddCommand(&cobra.Command{
			Use:   kind + " <proxy>",
			Short: "The proxy's " + kind + ": " + k.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return inspect.ProxyConfig(inspect.ProxyConfigOptions{Client: &inspect.Client{Address: addr},
					Kind: kind, Proxy: args[0], Output: output, Out: c.OutOrStdout()})
			},
		})
	}
	return cmd
}
