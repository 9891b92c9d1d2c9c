package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/demo"
)

func init() { register(newDemoCommand) }

func newDemoCommand() *cobra.Command {
	var (
		dir      string
		requests int
		noWait   bool
		rate     int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local mesh with a canary release and show the traffic split",
		Long: `demo starts a mesh on this machine, no cluster and no root: the control plane,
product-service v1 and v2 (echo apps with sidecars) and a client sidecar, configured
by an Istio VirtualService (v1 90% / v2 10%, user-group: beta-testers -> v2). It
prints the mesh dashboard's URL, sends requests, prints the split it observed
and the dashboard link of one request's trace (every request is traced to the
control plane's built-in Zipkin collector), then keeps running until Ctrl-C
with live traffic (--traffic-rps) for the dashboard's service graph and traces.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find own binary: %w", err)
			}
			if dir == "" {
				dir = filepath.Join(os.TempDir(), "sluice-demo")
			}
			res, err := demo.Run(cmd.Context(), demo.Options{
				Binary: bin, Dir: dir, Requests: requests, Wait: !noWait, TrafficRate: rate, Out: cmd.OutOrStdout(),
			})
			if err != nil {
				return err
			}
			if res.Failures > 0 {
				return fmt.Errorf("demo: %d requests failed", res.Failures)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder for the demo's config and logs (default $TMPDIR/sluice-demo)")
	cmd.Flags().IntVar(&requests, "requests", 1000, "requests to send to measure the split")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "exit after measuring instead of running until Ctrl-C")
	cmd.Flags().IntVar(&rate, "traffic-rps", 5, "requests per second the client keeps sending while the demo runs, for the dashboard (0: none)")
	return cmd
}
