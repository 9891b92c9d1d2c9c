package analysis

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Ported from istio/istio pkg/config/analysis/analyzers/gateway/conflictinggateway.go.
func init() {
	register(&Analyzer{
		Name:        "gateway.ConflictingGatewayAnalyzer",
		Workloads:   true,
		Description: "Checks a gateway's selector, port number and hosts",
		Codes:       []string{"IST0101", "IST0145"},
		run:         analyzeConflictingGateways,
	})
}

// gatewayHostsBind maps a server's hosts to its bind address.
type gatewayHostsBind map[string]string

// gatewaysBySelectorPort maps "selector~port" to gateway full names and
// the hosts each binds there (initGatewaysMap).
type gatewaysBySelectorPort map[string]map[string]gatewayHostsBind

func analyzeConflictingGateways(c *Context) {
	m := gatewaysBySelectorPort{}
	for _, o := range c.Objects(config.KindGateway) {
		gw := o.Spec.(*networking.Gateway)
		sel := selectorString(gw.GetSelector())
		for _, srv := range gw.GetServers() {
			key := sel + "~" + strconv.Itoa(int(srv.GetPort().GetNumber()))
			if m[key] == nil {
				m[key] = map[string]gatewayHostsBind{}
			}
			hb := gatewayHostsBind{}
			for _, h := range srv.GetHosts() {
				hb[h] = srv.GetBind()
			}
			m[key][o.FullName()] = hb
		}
	}
	for _, o := range c.Objects(config.KindGateway) {
		conflictingGateway(c, o, m)
	}
}

func conflictingGateway(c *Context, o *Object, m gatewaysBySelectorPort) {
	gw := o.Spec.(*networking.Gateway)
	sel := selectorString(gw.Selector)
	hits := gatewaysBySelectorPort{}
	for key := range m {
		xSel, _, _ := strings.Cut(key, "~")
		if sel == xSel || (strings.Contains(xSel, sel) || strings.Contains(sel, xSel)) && sharePod(c, gw.Selector, parseSelector(xSel)) {
			hits[key] = m[key]
		}
	}
	if sel != "" && len(hits) == 0 {
		c.report(ReferencedResourceNotFound, o, fmt.Sprintf(pathGatewaySelector, selectorLabel(sel)), "selector", sel)
		return
	}
	for _, srv := range gw.Servers {
		port := strconv.Itoa(int(srv.GetPort().GetNumber()))
		var conflicts []string
		// Istio walks these maps in random order; sorted, the result (which
		// checkDuplicates' side effect can depend on) is the same every run.
		for _, key := range sortedKeys(hits) {
			if _, p, _ := strings.Cut(key, "~"); p != port {
				continue
			}
			for _, name := range sortedKeys(hits[key]) {
				if name != o.FullName() && len(checkDuplicates(srv.GetHosts(), srv.GetBind(), hits[key][name])) > 0 {
					conflicts = append(conflicts, name)
				}
			}
		}
		if len(conflicts) > 0 {
			sort.Strings(conflicts)
			c.report(ConflictingGateways, o, "", strings.Join(conflicts, ","), sel, port, strings.Join(srv.GetHosts(), ","))
		}
	}
}

// sharePod reports whether some pod is selected by both selectors.
func sharePod(c *Context, a, b map[string]string) bool {
	for _, p := range c.Objects(KindPod) {
		if selects(a, p.Labels) && selects(b, p.Labels) {
			return true
		}
	}
	return false
}

// checkDuplicates returns the hosts already known with the same bind; if
// none, it records hosts as known (pilot/pkg/model CheckDuplicates, whose
// side effect the analyzer relies on).
func checkDuplicates(hosts []string, bind string, known map[string]string) []string {
	var dups []string
	for _, h := range hosts {
		if b, ok := known[h]; ok && b == bind {
			dups = append(dups, h)
		}
	}
	if len(dups) == 0 {
		for _, h := range hosts {
			known[h] = bind
		}
	}
	return dups
}
