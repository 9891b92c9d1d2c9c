package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

func init() { register(newStatusCommand) }

func newStatusCommand() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the Kubernetes Gateway API status the control plane computed",
		Long: `status reads /debug/gatewayapi from a running "sluice control" and prints, per
GatewayClass, Gateway, listener and route parent, the conditions the Gateway API
defines (Accepted, ResolvedRefs, Programmed, ...) with their reasons. It exits 1 when
a condition is not as it should be.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc := &http.Client{Timeout: 5 * time.Second}
			resp, err := hc.Get("http://" + addr + "/debug/gatewayapi")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var st gatewayapi.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return err
			}
			printStatus(cmd.OutOrStdout(), &st)
			if p := st.Problems(); len(p) > 0 {
				return fmt.Errorf("%d condition(s) not as they should be", len(p))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "address", "127.0.0.1:15014", "the control plane's --http-address")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(w io.Writer, st *gatewayapi.Status) {
	conds := func(cs []gatewayapi.Condition) string {
		var parts []string
		for _, c := range cs {
			s := fmt.Sprintf("%s=%s(%s)", c.Type, c.Status, c.Reason)
			if c.Message != "" && (c.Status != "True" || c.Type == "Conflicted") {
				s += ": " + c.Message
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	for _, c := range st.GatewayClasses {
		fmt.Fprintf(w, "GatewayClass %s (%s): %s\n", c.Name, c.ControllerName, conds(c.Conditions))
	}
	for _, g := range st.Gateways {
		fmt.Fprintf(w, "Gateway %s/%s: %s\n", g.Namespace, g.Name, conds(g.Conditions))
		for _, l := range g.Listeners {
			fmt.Fprintf(w, "  listener %s %s/%d, %d route(s): %s\n", l.Name, l.Protocol, l.Port, l.AttachedRoutes, conds(l.Conditions))
		}
	}
	for _, r := range st.Routes {
		fmt.Fprintf(w, "%s %s/%s\n", r.Kind, r.Namespace, r.Name)
		for _, p := range r.Parents {
			fmt.Fprintf(w, "  %s: %s\n", p.ParentRef, conds(p.Conditions))
		}
	}
	if len(st.GatewayClasses)+len(st.Gateways)+len(st.Routes) == 0 {
		fmt.Fprintln(w, "no Gateway API resources")
	}
}
