package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// percentile returns the q-quantile (nearest rank) of sorted d.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// spread is "p50 / p99 / max" in ms, or "-" when nothing was measured.
func spread(d []time.Duration, withMax bool) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	out := ms(percentile(s, 0.5)) + " / " + ms(percentile(s, 0.99))
	if withMax {
		out += " / " + ms(s[len(s)-1])
	}
	return out
}

func bytesString(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func touched(c changeResult) string {
	s := fmt.Sprintf("%d / %d", c.touched, c.holders)
	if c.missing > 0 {
		s += fmt.Sprintf(" (%d MISSED)", c.missing)
	}
	return s
}

var columns = []string{
	"N x M x K", "scope", "xDS", "ready ms p50 / p99",
	"EDS change ms p50 / p99 / max", "EDS touched / holding", "EDS bytes", "EDS CPU s",
	"RDS change ms p50 / p99 / max", "RDS touched / holding", "RDS bytes", "RDS CPU s",
	"CPU s load / connect", "RSS MiB idle / K / peak", "RSS per proxy KiB", "live heap MiB idle / K (KiB per proxy)",
	"sidecar RSS MiB (10 svc, x)",
}

// printTable writes the results as a markdown table, then notes.
func printTable(w io.Writer, results []*result, baseline map[int]float64) {
	fmt.Fprintln(w, "| "+strings.Join(columns, " | ")+" |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(columns)))
	for _, r := range results {
		fmt.Fprintln(w, "| "+strings.Join(row(r, baseline[r.endpoints]), " | ")+" |")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Propagation: from the file write to the proxy's receipt; it includes the folder watch and the control plane's debounce (100 ms quiet, at most 1 s).")
	fmt.Fprintln(w, "Holding: proxies whose CDS has the changed service's cluster; touched: proxies that received any response for the change.")
	for _, r := range results {
		fmt.Fprintf(w, "%s: the bench process's own CPU (simulated proxies): %.2f s.\n", r.point, r.benchCPU)
		if r.aborted != "" {
			fmt.Fprintf(w, "%s: NOT COMPLETED: %s.\n", r.point, r.aborted)
		}
		if r.notReady > 0 {
			fmt.Fprintf(w, "%s: %d of %d proxies were not ready in time.\n", r.point, r.notReady, r.proxies)
		}
		for _, f := range r.proxyFailure {
			fmt.Fprintf(w, "%s: proxy error: %s\n", r.point, f)
		}
	}
}

// changeColumns are a change's four columns, "-" when it was not measured.
func changeColumns(c changeResult) []string {
	if !c.measured {
		return []string{"-", "-", "-", "-"}
	}
	return []string{spread(c.latencies, true), touched(c), bytesString(c.bytes), fmt.Sprintf("%.2f", c.cpu)}
}

func row(r *result, base float64) []string {
	scope := "off"
	if r.scope {
		scope = "on"
	}
	ready := spread(r.ready, false)
	if r.notReady > 0 {
		ready += fmt.Sprintf(" (%d NOT READY)", r.notReady)
	}
	perProxy := "-"
	if r.proxies > 0 && r.rssK > 0 {
		perProxy = fmt.Sprintf("%.0f", (r.rssK-r.rssIdle)*1024/float64(r.proxies))
	}
	sidecar := "-"
	if r.sidecarRSS > 0 {
		sidecar = fmt.Sprintf("%.1f", r.sidecarRSS)
		if base > 0 {
			sidecar += fmt.Sprintf(" (%.1f, x%.2f)", base, r.sidecarRSS/base)
		}
	}
	rssK := "-"
	if r.rssK > 0 {
		rssK = fmt.Sprintf("%.0f", r.rssK)
	}
	cols := []string{r.point.String(), scope, r.protocol, ready}
	cols = append(cols, changeColumns(r.ep)...)
	cols = append(cols, changeColumns(r.cfg)...)
	heap := "-"
	if r.heapK > 0 && r.proxies > 0 {
		heap = fmt.Sprintf("%.0f / %.0f (%.0f)", r.heapIdle, r.heapK, (r.heapK-r.heapIdle)*1024/float64(r.proxies))
	}
	return append(cols, fmt.Sprintf("%.2f / %.2f", r.cpuStart, r.cpuConnect),
		fmt.Sprintf("%.0f / %s / %.0f", r.rssIdle, rssK, r.hwm), perProxy, heap, sidecar)
}
