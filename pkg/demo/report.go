package demo

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// progress draws a one-line progress bar.
type progress struct {
	out   io.Writer
	total int
	last  int
}

func newProgress(out io.Writer, total int) *progress {
	return &progress{out: out, total: total, last: -1}
}

func (p *progress) set(n int) {
	const width = 40
	filled := n * width / p.total
	if filled == p.last && n != p.total {
		return
	}
	p.last = filled
	fmt.Fprintf(p.out, "\r  [%s%s] %4d/%d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, p.total)
}

func (p *progress) done() { fmt.Fprintln(p.out) }

func printSplit(out io.Writer, counts map[string]int, total int) {
	fmt.Fprintln(out, "\nObserved split (configured: v1 90%, v2 10%):")
	for _, v := range slices.Sorted(maps.Keys(counts)) {
		pct := float64(counts[v]) * 100 / float64(total)
		fmt.Fprintf(out, "  %-4s %5d  %5.1f%%  %s\n", v, counts[v], pct, strings.Repeat("█", int(pct/2+0.5)))
	}
}

func formatCounts(counts map[string]int) string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s=%d", v, counts[v]))
	}
	if len(parts) == 0 {
		return "none answered"
	}
	return strings.Join(parts, " ")
}

func printTry(out io.Writer, p ports, cfgDir, logDir string) {
	client := addr(p.ClientOutbound)
	fmt.Fprintf(out, `
The mesh keeps running; press Ctrl-C to stop it. Things to try:

  # a request through the client's sidecar (Host names the service)
  curl -s -H 'Host: product-service:9080' http://%[1]s/hello
  # the same as an HTTP proxy would send it
  curl -s -x http://%[1]s http://product-service:9080/hello
  # beta testers always reach v2
  curl -s -H 'Host: product-service' -H 'user-group: beta-testers' http://%[1]s/

  # edit the canary weights and save; the change applies without a restart
  $EDITOR %[2]s/canary.yaml

  # the mesh dashboard: live service graph, per service and workload pages
  sluice dashboard --address %[4]s      # prints %[6]s (--browser opens it)
  # traces of every request (the control plane is the zipkin collector)
  open %[6]s#/traces      # Zipkin API: curl -s http://%[4]s/api/v2/services

  # what the proxies run
  curl -s http://%[3]s/config_dump | less      # client sidecar: runtime + xDS
  curl -s http://%[3]s/stats                   # counters per cluster
  curl -s http://%[4]s/debug/status            # control plane: pushes, proxies, ACK/NACK, config errors

Logs: %[5]s
`, client, cfgDir, addr(p.ClientAdmin), addr(p.ControlHTTP), logDir, dashboardURL(p))
}
