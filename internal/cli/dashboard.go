package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/dashboard"
)

func init() { register(newDashboardCommand) }

// dashboardTarget is one `sluice dashboard` argument: where its address
// comes from and how to say it is missing.
type dashboardTarget struct {
	flag, env, path string
}

var dashboardTargets = map[string]dashboardTarget{
	"prometheus": {flag: "prometheus-address", env: "SLUICE_PROMETHEUS_ADDRESS"},
	"grafana":    {flag: "grafana-address", env: "SLUICE_GRAFANA_ADDRESS"},
	"zipkin":     {flag: "zipkin-address", env: "SLUICE_ZIPKIN_ADDRESS", path: "/zipkin/"},
}

func newDashboardCommand() *cobra.Command {
	var (
		addr    string
		browser bool
		addrs   = map[string]*string{}
	)
	cmd := &cobra.Command{
		Use:   "dashboard [mesh|prometheus|grafana|zipkin]",
		Short: "Print (and with --browser open) the URL of the mesh dashboard or of an add-on, as istioctl dashboard",
		Long: `dashboard prints the URL of a dashboard, as istioctl dashboard does, and opens it
with xdg-open when --browser is given (not by default: no window pops up).

  mesh        sluice's built-in dashboard, served by "sluice control" at
              /dashboard/ on its --http-address (--address here): the service
              graph, a page per service and workload, the config with its
              validation messages, the proxies' sync state.
  prometheus  --prometheus-address or $SLUICE_PROMETHEUS_ADDRESS, else the
              Prometheus the control plane was given (control
              --prometheus-address).
  grafana     --grafana-address or $SLUICE_GRAFANA_ADDRESS.
  zipkin      --zipkin-address or $SLUICE_ZIPKIN_ADDRESS (its /zipkin/ UI).

With no argument it is mesh. There is no port-forward: sluice runs on this
machine, so the addresses are used as they are.`,
		Example: `  sluice dashboard
  sluice dashboard mesh --address 127.0.0.1:15014 --browser
  sluice dashboard prometheus --prometheus-address http://127.0.0.1:9090`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"mesh", "prometheus", "grafana", "zipkin"},
		RunE: func(cmd *cobra.Command, args []string) error {
			which := "mesh"
			if len(args) == 1 {
				which = args[0]
			}
			url, err := dashboardURL(cmd.Context(), which, addr, addrs)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), url)
			if browser {
				if err := exec.Command("xdg-open", url).Start(); err != nil {
					return fmt.Errorf("dashboard: open %s with xdg-open: %w", url, err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "address", "127.0.0.1:15014", "the control plane's --http-address")
	f.BoolVar(&browser, "browser", false, "open the URL with xdg-open")
	for name, t := range dashboardTargets {
		addrs[name] = f.String(t.flag, os.Getenv(t.env), name+" address, http://host:port (env "+t.env+")")
	}
	return cmd
}

// dashboardURL is the URL of which.
func dashboardURL(ctx context.Context, which, control string, addrs map[string]*string) (string, error) {
	if which == "mesh" {
		return withScheme(control) + dashboard.Prefix, nil
	}
	t, ok := dashboardTargets[which]
	if !ok {
		return "", fmt.Errorf("dashboard: %q is not one of mesh, prometheus, grafana, zipkin", which)
	}
	a := *addrs[which]
	if a == "" && which == "prometheus" {
		a = controlPrometheus(ctx, control)
	}
	if a == "" {
		return "", fmt.Errorf("dashboard: no %s configured: pass --%s or set %s", which, t.flag, t.env)
	}
	return strings.TrimSuffix(withScheme(a), "/") + t.path, nil
}

// controlPrometheus asks the control plane which Prometheus its
// dashboard reads; "" when it scrapes the proxies itself or does not
// answer.
func controlPrometheus(ctx context.Context, control string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, withScheme(control)+dashboard.Prefix+"api/info", nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var info dashboard.Info
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&info) != nil {
		return ""
	}
	return info.PrometheusAddress
}

func withScheme(a string) string {
	if strings.HasPrefix(a, "http://") || strings.HasPrefix(a, "https://") {
		return a
	}
	return "http://" + a
}
