package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/jwks"
)

func init() { register(newStatusCommand) }

func newStatusCommand() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the control plane does not enforce, each sidecar's mTLS mode and traffic, and the Gateway API status",
		Long: `status reads /debug/status and /debug/gatewayapi from a running "sluice control".
It first lists every resource accepted but NOT ENFORCED (a kind sluice does not build
yet, such as Telemetry), with its file and why, and any RequestAuthentication key set
the control plane could not fetch (its tokens are refused); then, per connected sidecar
and inbound port, the effective PeerAuthentication mode (STRICT, PERMISSIVE, DISABLE),
the PeerAuthentications it comes from, and how many connections the port took in
mTLS and in plaintext since the proxy started ("-" when the proxy does not report
them), so STRICT can be switched on once no plaintext arrives; then, per
GatewayClass, Gateway, listener and route parent, the conditions the Gateway API
defines (Accepted, ResolvedRefs, Programmed, ...) with their reasons. It exits 1 when
a condition is not as it should be. Before the mTLS table, ANALYSIS lists what the
analyzers (as "sluice analyze", run by the control plane after each config change)
found in the config in force, per resource; they are advice and do not change the
exit status. --json prints the Gateway API status with the "not_enforced", "mtls"
and "analysis" entries added.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hc := &http.Client{Timeout: 5 * time.Second}
			var cp struct {
				NotEnforced []config.NotEnforced         `json:"not_enforced"`
				MTLS        []controlplane.WorkloadMTLS  `json:"mtls"`
				Jwks        []jwks.Failure               `json:"jwks_failures"`
				Analysis    controlplane.AnalysisSummary `json:"analysis"`
			}
			body, err := getStatus(hc, addr, "/debug/status")
			if err != nil {
				return err
			}
			if err := json.Unmarshal(body, &cp); err != nil {
				return fmt.Errorf("%s/debug/status: %w", addr, err)
			}
			body, err = getStatus(hc, addr, "/debug/gatewayapi")
			if err != nil {
				return err
			}
			if asJSON {
				return printStatusJSON(cmd.OutOrStdout(), body, cp.NotEnforced, cp.MTLS, cp.Analysis)
			}
			var st gatewayapi.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return err
			}
			printNotEnforced(cmd.OutOrStdout(), cp.NotEnforced)
			printJwksFailures(cmd.OutOrStdout(), cp.Jwks)
			printAnalysis(cmd.OutOrStdout(), cp.Analysis)
			printMTLS(cmd.OutOrStdout(), cp.MTLS)
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

// printJwksFailures names the RequestAuthentication key sets the control
// plane could not fetch: tokens of those issuers are refused (fail closed).
func printJwksFailures(w io.Writer, list []jwks.Failure) {
	for _, f := range list {
		fmt.Fprintf(w, "JWKS UNAVAILABLE  issuer %s  %s: %s (since %s); its tokens are refused\n",
			f.Issuer, f.JwksURI, f.Error, f.Since.Format(time.RFC3339))
	}
	if len(list) > 0 {
		fmt.Fprintln(w)
	}
}

// getStatus GETs one of the control plane's status pages.
func getStatus(hc *http.Client, addr, path string) ([]byte, error) {
	resp, err := hc.Get("http://" + addr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s%s: %s: %s", addr, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printStatusJSON prints the Gateway API status object with the
// not_enforced and mtls lists and the analysis added to it.
func printStatusJSON(w io.Writer, gatewayStatus []byte, notEnforced []config.NotEnforced, mtls []controlplane.WorkloadMTLS,
	analysis controlplane.AnalysisSummary) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(gatewayStatus, &obj); err != nil {
		return err
	}
	if notEnforced == nil {
		notEnforced = []config.NotEnforced{}
	}
	ne, err := json.Marshal(notEnforced)
	if err != nil {
		return err
	}
	obj["not_enforced"] = ne
	if mtls == nil {
		mtls = []controlplane.WorkloadMTLS{}
	}
	if obj["mtls"], err = json.Marshal(mtls); err != nil {
		return err
	}
	if obj["analysis"], err = json.Marshal(analysis); err != nil {
		return err
	}
	out, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// printAnalysis lists the control plane's analysis of the config in
// force, per resource, as `sluice analyze` prints messages.
func printAnalysis(w io.Writer, a controlplane.AnalysisSummary) {
	if a.Error != "" {
		fmt.Fprintf(w, "ANALYSIS: %s\n", a.Error)
	}
	resources := make([]string, 0, len(a.ByResource))
	n := 0
	for r, list := range a.ByResource {
		resources = append(resources, r)
		n += len(list)
	}
	if n == 0 {
		if a.Error == "" {
			fmt.Fprintf(w, "ANALYSIS (config version %d): no problems found\n\n", a.ConfigVersion)
		}
		return
	}
	sort.Strings(resources)
	fmt.Fprintf(w, "ANALYSIS (config version %d): %d message(s) on %d resource(s)\n", a.ConfigVersion, n, len(resources))
	for _, r := range resources {
		fmt.Fprintf(w, "  %s\n", r)
		for _, m := range a.ByResource[r] {
			origin := ""
			if m.Origin != "" {
				origin = " (" + m.Origin + ")"
			}
			fmt.Fprintf(w, "    %s [%s]%s %s\n", m.Level, m.Code, origin, m.Message)
		}
	}
	fmt.Fprintln(w)
}

func printNotEnforced(w io.Writer, list []config.NotEnforced) {
	for _, n := range list {
		fmt.Fprintf(w, "NOT ENFORCED %s %s/%s (%s): %s\n", n.Kind, n.Namespace, n.Name, n.File, n.Reason)
	}
}

// printMTLS lists, per connected sidecar and inbound port, the effective
// PeerAuthentication mode and the connections it took in mTLS and in
// plaintext since the proxy started ("-" where the proxy does not report
// them), so STRICT can be switched on knowing who still sends plaintext.
func printMTLS(w io.Writer, list []controlplane.WorkloadMTLS) {
	if len(list) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tPORT\tMTLS MODE\tMTLS CONNS\tPLAINTEXT CONNS\tPEERAUTHENTICATION")
	count := func(v *uint64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatUint(*v, 10)
	}
	for _, wl := range list {
		policies := strings.Join(wl.Policies, ", ")
		if policies == "" {
			policies = "none (default PERMISSIVE)"
		}
		for _, p := range wl.Ports {
			fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\t%s\t%s\n", wl.Namespace, wl.Name, p.Port, p.Mode, count(p.MTLS), count(p.Plaintext), policies)
		}
		if len(wl.Ports) == 0 {
			fmt.Fprintf(tw, "%s/%s\t-\t-\t-\t-\t%s\n", wl.Namespace, wl.Name, policies)
		}
	}
	tw.Flush()
	for _, wl := range list {
		if wl.StatsError != "" {
			fmt.Fprintf(w, "  %s/%s: connection counts unavailable: %s\n", wl.Namespace, wl.Name, wl.StatsError)
		}
		for _, u := range wl.Unlabelled {
			fmt.Fprintf(w, "  %s/%s serves endpoint %s whose workload lacks security.istio.io/tlsMode: istio: "+
				"clients send it plaintext, which STRICT refuses\n", wl.Namespace, wl.Name, u)
		}
	}
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
