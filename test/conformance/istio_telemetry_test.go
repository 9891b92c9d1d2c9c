package conformance

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The istio-telemetry group: Istio's observability tasks on the
// istio-security runner's pods, with two more expectations judged by
// observing the proxies while a check's requests are sent:
//
//   - expect.metrics: the rise of Istio's standard metrics, summed over
//     every proxy's /stats/prometheus (series whose labels include the
//     given ones), and the labels each matching series must carry;
//   - expect.access_log: lines of Istio's default text access log in a
//     proxy's output (the client's sidecar, or proxy.workload's), counted
//     by the fields they must show.
//
// expect.traces (spans a Zipkin collector run by the runner received) and
// expect.propagation (the trace headers the backend saw) are judged in
// istio_traces_test.go.

// TestIstioTelemetry runs the istio-telemetry group.
func TestIstioTelemetry(t *testing.T) { runGroup(t, istioTasks{telemetry: true}) }

// Field names of expect.metrics[] and expect.access_log[].
var (
	metricFields    = set("name", "labels", "delta", "value", "absent", "labels_present", "labels_absent", "proxy")
	accessLogFields = set("proxy", "match", "count")
	accessLogMatch  = set("method", "path", "protocol", "status", "response_flags", "authority", "upstream_cluster", "request_id")
)

// telemetryUnsupported says why a telemetry check cannot run, or "".
func telemetryUnsupported(ch *Check) string {
	unknown := tracesUnknown(ch.Raw)
	unknown = append(unknown, entryFieldsUnknown(ch.Raw, "metrics", metricFields)...)
	unknown = append(unknown, entryFieldsUnknown(ch.Raw, "access_log", accessLogFields)...)
	for i, l := range listOf(ch.Raw, "access_log") {
		m, _ := l["match"].(map[string]any)
		for k := range m {
			if !accessLogMatch[k] {
				unknown = append(unknown, fmt.Sprintf("expect.access_log[%d].match.%s", i, k))
			}
		}
	}
	if len(unknown) > 0 {
		return "fields this runner does not know: " + strings.Join(unknown, ", ")
	}
	return ""
}

// listOf is the list of maps at expect.<where>.
func listOf(raw map[string]any, where string) []map[string]any {
	v, _ := rawField(raw, "expect", where)
	list, _ := v.([]any)
	var out []map[string]any
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// countRange reads [min, max] (a missing max: no upper bound).
func countRange(v any) (lo, hi float64) {
	list, _ := v.([]any)
	lo, hi = math.Inf(-1), math.Inf(1)
	if len(list) > 0 && list[0] != nil {
		lo, _ = list[0].(float64)
	}
	if len(list) > 1 && list[1] != nil {
		hi, _ = list[1].(float64)
	}
	return lo, hi
}

// promSample is one series of a scrape.
type promSample struct {
	labels map[string]string
	value  float64
}

// scrape reads a proxy's Istio metrics, histograms flattened into their
// _count, _sum and _bucket series as Prometheus stores them.
func scrape(admin string) (map[string][]promSample, error) {
	resp, err := http.Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("%s/stats/prometheus: %w", admin, err)
	}
	out := map[string][]promSample{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			addSamples(out, name, f.GetType(), m, labels)
		}
	}
	return out, nil
}

func addSamples(out map[string][]promSample, name string, typ dto.MetricType, m *dto.Metric, labels map[string]string) {
	with := func(k, v string) map[string]string {
		c := make(map[string]string, len(labels)+1)
		for a, b := range labels {
			c[a] = b
		}
		c[k] = v
		return c
	}
	switch typ {
	case dto.MetricType_COUNTER:
		out[name] = append(out[name], promSample{labels, m.GetCounter().GetValue()})
	case dto.MetricType_GAUGE:
		out[name] = append(out[name], promSample{labels, m.GetGauge().GetValue()})
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		out[name+"_count"] = append(out[name+"_count"], promSample{labels, float64(h.GetSampleCount())})
		out[name+"_sum"] = append(out[name+"_sum"], promSample{labels, h.GetSampleSum()})
		inf := false
		for _, b := range h.GetBucket() {
			le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
			if math.IsInf(b.GetUpperBound(), 1) {
				le, inf = "+Inf", true
			}
			out[name+"_bucket"] = append(out[name+"_bucket"], promSample{with("le", le), float64(b.GetCumulativeCount())})
		}
		if !inf {
			out[name+"_bucket"] = append(out[name+"_bucket"], promSample{with("le", "+Inf"), float64(h.GetSampleCount())})
		}
	}
}

// telemetryProxies are the admin addresses and processes of every proxy
// the case runs (clients, workloads' sidecars, gateways), by
// namespace/name of the workload they serve.
func (e *istioEnv) telemetryProxies() map[string][]proxyHandle {
	out := map[string][]proxyHandle{}
	for key, c := range e.clients {
		out[key] = append(out[key], proxyHandle{admin: c.AdminAddress, proc: c.Sidecar})
	}
	for key, ws := range e.workloads {
		for _, w := range ws {
			if w.w.Sidecar != nil {
				out[key] = append(out[key], proxyHandle{admin: w.w.AdminAddress, proc: w.w.Sidecar})
			}
		}
	}
	for key, g := range e.gateways {
		out["gateway "+key] = append(out["gateway "+key], proxyHandle{admin: g.AdminAddress, proc: g.Proxy})
	}
	return out
}

// proxyHandle is one proxy the runner can scrape and read the output of.
type proxyHandle struct {
	admin string
	proc  *testenv.Process
}

// proxyKey is the workload whose proxy an expectation reads: proxy.workload
// (in proxy.namespace, else the case's), else the check's client.
func (e *istioEnv) proxyKey(ch *Check, entry map[string]any) string {
	if p, ok := entry["proxy"].(map[string]any); ok {
		w, _ := p["workload"].(string)
		ns, _ := p["namespace"].(string)
		if ns == "" {
			ns = e.data.Backends.ns("")
		}
		return ns + "/" + w
	}
	if mc := ch.Via.MeshClient; mc != nil {
		return mc.Namespace + "/" + mc.Workload
	}
	for key := range e.gateways {
		return "gateway " + key
	}
	return ""
}

// observeTelemetry sends the check's requests between two looks at the
// proxies and judges expect.metrics and expect.access_log, polling a few
// seconds (access logs are flushed each second, as Envoy's).
func (e *istioEnv) observeTelemetry(ch *Check) []string {
	metrics, logs := listOf(ch.Raw, "metrics"), listOf(ch.Raw, "access_log")
	traces, _ := rawField(ch.Raw, "expect", "traces")
	tracesSpec, _ := traces.(map[string]any)
	props := listOf(ch.Raw, "propagation")
	if len(metrics) == 0 && len(logs) == 0 && tracesSpec == nil && len(props) == 0 {
		return nil
	}
	if tracesSpec != nil && len(e.collectors) == 0 {
		return []string{"expect.traces: the case runs no Zipkin collector (backends.yaml collector: zipkin)"}
	}
	proxies := e.telemetryProxies()
	if len(logs) > 0 {
		// The runner's earlier sends of this check are logged within a
		// second (the proxies flush their access logs each second, as
		// Envoy does); only what this observation sends is counted.
		time.Sleep(1200 * time.Millisecond)
	}
	// The runner's earlier sends of this check may still be counted (a
	// TCP connection is counted closed when the proxy sees it close): the
	// "before" look is taken once two looks in a row agree.
	before, err := settledScrape(proxies)
	if err != nil {
		return []string{err.Error()}
	}
	marks := map[*testenv.Process]int{}
	for _, hs := range proxies {
		for _, h := range hs {
			marks[h.proc] = len(h.proc.Log())
		}
	}
	var ids []string
	var xs []exchange
	start := time.Now()
	for i := 0; i < max(ch.Repeat, 1); i++ {
		r, err := e.Send(ch)
		if p := evalResponse(ch, r, err); len(p) > 0 {
			return p
		}
		x := exchange{sent: http.Header{}}
		for k, v := range ch.Request.Headers {
			x.sent.Set(k, v)
		}
		if r != nil && r.Echo != nil {
			ids = append(ids, r.Echo.Request.Headers.Get("X-Request-Id"))
			x.saw = r.Echo.Request.Headers
		}
		xs = append(xs, x)
	}
	if p := evalPropagation(props, xs); len(p) > 0 {
		return p
	}
	sent := time.Now()
	var problems []string
	deadline := time.Now().Add(5 * time.Second)
	if tracesSpec != nil {
		deadline = time.Now().Add(settleOf(ch.Raw))
	}
	for {
		problems = nil
		if tracesSpec != nil {
			problems = append(problems, e.judgeTraces(ch, tracesSpec, xs, start)...)
			if len(problems) == 0 && allowsNone(tracesSpec) && time.Since(sent) < spanFlush {
				// Spans still to come could break an upper bound.
				problems = append(problems, "waiting for a span flush")
			}
		}
		after, err := scrapeAll(proxies)
		if err != nil {
			return []string{err.Error()}
		}
		for _, m := range metrics {
			key := e.proxyKey(ch, m)
			if len(proxies[key]) == 0 {
				problems = append(problems, fmt.Sprintf("metrics: no proxy of %s", key))
				continue
			}
			problems = append(problems, evalMetric(m, pick(before, proxies[key]), pick(after, proxies[key]))...)
		}
		for _, l := range logs {
			problems = append(problems, e.evalAccessLog(ch, l, proxies, marks, ids)...)
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			return problems
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pick keeps the scrapes of the given proxies.
func pick(all map[string]map[string][]promSample, hs []proxyHandle) map[string]map[string][]promSample {
	out := map[string]map[string][]promSample{}
	for _, h := range hs {
		out[h.admin] = all[h.admin]
	}
	return out
}

// scrapeAll reads every proxy's metrics, by admin address.
func scrapeAll(proxies map[string][]proxyHandle) (map[string]map[string][]promSample, error) {
	out := map[string]map[string][]promSample{}
	for _, hs := range proxies {
		for _, h := range hs {
			s, err := scrape(h.admin)
			if err != nil {
				return nil, err
			}
			out[h.admin] = s
		}
	}
	return out, nil
}

// settledScrape is scrapeAll once two looks 300ms apart agree (at most
// about 3s).
func settledScrape(proxies map[string][]proxyHandle) (map[string]map[string][]promSample, error) {
	prev, err := scrapeAll(proxies)
	if err != nil {
		return nil, err
	}
	for range 10 {
		time.Sleep(300 * time.Millisecond)
		cur, err := scrapeAll(proxies)
		if err != nil {
			return nil, err
		}
		if reflect.DeepEqual(prev, cur) {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// evalMetric judges one expect.metrics entry: the rise, over all proxies,
// of the series of that name whose labels include the given ones, and the
// label names each such series carries.
func evalMetric(m map[string]any, before, after map[string]map[string][]promSample) []string {
	name, _ := m["name"].(string)
	want, _ := m["labels"].(map[string]any)
	names := func(key string) []string {
		var out []string
		if list, ok := m[key].([]any); ok {
			for _, v := range list {
				out = append(out, fmt.Sprint(v))
			}
		}
		return out
	}
	sum := func(snap map[string]map[string][]promSample) (float64, []map[string]string) {
		var total float64
		var matched []map[string]string
		for _, s := range snap {
			for _, smp := range s[name] {
				if labelsMatch(smp.labels, want) {
					total += smp.value
					matched = append(matched, smp.labels)
				}
			}
		}
		return total, matched
	}
	b, _ := sum(before)
	a, matched := sum(after)
	what := fmt.Sprintf("metric %s%v", name, want)
	if absent, _ := m["absent"].(bool); absent {
		if len(matched) > 0 {
			return []string{fmt.Sprintf("%s: %d series, want none", what, len(matched))}
		}
		return nil
	}
	var p []string
	if _, ok := m["delta"]; ok {
		if lo, hi := countRange(m["delta"]); a-b < lo || a-b > hi {
			p = append(p, fmt.Sprintf("%s rose by %v, want %v to %v", what, a-b, lo, hi))
		}
	}
	if _, ok := m["value"]; ok {
		if lo, hi := countRange(m["value"]); a < lo || a > hi {
			p = append(p, fmt.Sprintf("%s is %v, want %v to %v", what, a, lo, hi))
		}
	}
	present, absentLabels := names("labels_present"), names("labels_absent")
	if (len(present) > 0 || len(absentLabels) > 0) && len(matched) == 0 {
		return append(p, what+": no series")
	}
	for _, lbls := range matched {
		for _, k := range present {
			if _, ok := lbls[k]; !ok {
				return append(p, fmt.Sprintf("%s: a series lacks label %s: %v", what, k, lbls))
			}
		}
		for _, k := range absentLabels {
			if _, ok := lbls[k]; ok {
				return append(p, fmt.Sprintf("%s: a series carries label %s: %v", what, k, lbls))
			}
		}
	}
	return p
}

// labelsMatch reports whether have matches every wanted label: a plain
// value, {regex}, {prefix}, {contains}, {one_of} or {present}.
func labelsMatch(have map[string]string, want map[string]any) bool {
	for k, w := range want {
		v, ok := have[k]
		if !valueMatches(v, ok, w) {
			return false
		}
	}
	return true
}

func valueMatches(v string, present bool, w any) bool {
	m, ok := w.(map[string]any)
	if !ok {
		return present && v == fmt.Sprint(w)
	}
	for op, arg := range m {
		switch op {
		case "present":
			if b, _ := arg.(bool); b != present {
				return false
			}
		case "prefix":
			if !present || !strings.HasPrefix(v, fmt.Sprint(arg)) {
				return false
			}
		case "contains":
			if !present || !strings.Contains(v, fmt.Sprint(arg)) {
				return false
			}
		case "regex":
			re, err := regexp.Compile("^(?:" + fmt.Sprint(arg) + ")$")
			if err != nil || !present || !re.MatchString(v) {
				return false
			}
		case "one_of":
			list, _ := arg.([]any)
			found := false
			for _, x := range list {
				found = found || (present && v == fmt.Sprint(x))
			}
			if !found {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// istioTextLog is Istio's default text access log format (EnvoyTextLogFormat,
// pilot/pkg/model/telemetry_logging.go), field by field.
var istioTextLog = regexp.MustCompile(`\[(\S+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\S+) (\S+) "(.*)" (\d+) (\d+) (\d+) (\S+) "(.*)" "(.*)" "(.*)" "(.*)" "(.*)" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$`)

// accessLine is the fields of one access log line a check compares.
type accessLine struct {
	method, path, protocol, status, flags, requestID, authority, cluster string
}

func parseAccessLines(out string) []accessLine {
	var lines []accessLine
	for _, l := range strings.Split(out, "\n") {
		g := istioTextLog.FindStringSubmatch(strings.TrimRight(l, "\r"))
		if g == nil {
			continue
		}
		lines = append(lines, accessLine{method: g[2], path: g[3], protocol: g[4], status: g[5], flags: g[6],
			requestID: g[16], authority: g[17], cluster: g[19]})
	}
	return lines
}

// evalAccessLog judges one expect.access_log entry on the new output of
// the proxy it names (proxy.workload), or of the check's client.
func (e *istioEnv) evalAccessLog(ch *Check, l map[string]any, proxies map[string][]proxyHandle, marks map[*testenv.Process]int, ids []string) []string {
	key := e.proxyKey(ch, l)
	hs := proxies[key]
	if len(hs) == 0 {
		return []string{fmt.Sprintf("access_log: no proxy of %s", key)}
	}
	match, _ := l["match"].(map[string]any)
	lo, hi := countRange(l["count"])
	n := 0
	for _, h := range hs {
		for _, line := range parseAccessLines(h.proc.Log()[marks[h.proc]:]) {
			if accessLineMatches(line, match, ids) {
				n++
			}
		}
	}
	if float64(n) < lo || float64(n) > hi {
		return []string{fmt.Sprintf("access log of %s: %d lines match %v, want %v to %v", key, n, match, lo, hi)}
	}
	return nil
}

func accessLineMatches(l accessLine, match map[string]any, ids []string) bool {
	for k, v := range match {
		got := map[string]string{"method": l.method, "path": l.path, "protocol": l.protocol, "status": l.status,
			"response_flags": l.flags, "authority": l.authority, "upstream_cluster": l.cluster, "request_id": l.requestID}[k]
		switch want := v.(type) {
		case map[string]any:
			if !valueMatches(got, got != "-", want) {
				return false
			}
		case string:
			if k == "request_id" && want == "from_backend" {
				if !slices.Contains(ids, got) {
					return false
				}
				continue
			}
			if got != want {
				return false
			}
		default:
			if got != fmt.Sprint(want) {
				return false
			}
		}
	}
	return true
}
