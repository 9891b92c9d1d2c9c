package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/inspect"
)

func init() { register(newProxyStatusCommand) }

func newProxyStatusCommand() *cobra.Command {
	var addr, output string
	cmd := &cobra.Command{
		Use:     "proxy-status",
		Aliases: []string{"ps"},
		Short:   "Show every connected proxy's xDS sync state per type, as istioctl proxy-status",
		Long: `proxy-status reads /debug/syncz from a running "sluice control" and prints, for every
connected proxy (name.namespace), the state of each xDS type as istioctl proxy-status does:
SYNCED (the proxy ACKed the version last sent; with the time since), STALE (sent, not
answered yet), NACK (rejected; the proxy's message is printed under the table) or NOT SENT;
then the control plane and the config (push) version published to the proxy. CLUSTER is
"-": sluice has no cluster ID. -o json or -o yaml prints the same rows with the versions
sent and acked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := (&inspect.Client{Address: addr}).Proxies()
			if err != nil {
				return err
			}
			rows := inspect.StatusRows(list, addr)
			switch output {
			case "", "table":
				return inspect.WriteStatusTable(cmd.OutOrStdout(), rows, time.Now())
			case "json", "yaml":
				return printStructured(cmd, rows, output)
			}
			return fmt.Errorf("output format %q not supported (table, json, yaml)", output)
		},
	}
	cmd.Flags().StringVar(&addr, "address", "127.0.0.1:15014", "the control plane's --http-address")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// printStructured prints v as indented JSON or as YAML.
func printStructured(cmd *cobra.Command, v any, format string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
	} else {
		b = append(b, '\n')
	}
	_, err = cmd.OutOrStdout().Write(b)
	return err
}
