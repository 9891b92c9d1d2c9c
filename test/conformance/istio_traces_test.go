package conformance

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// expect.traces and expect.propagation of istio-telemetry checks (the
// corpus README's "Expectation fields"): spans the case's Zipkin
// collector received for a check's requests, and how the trace headers
// the backend saw relate to what the client sent.

// Field names of expect.traces, its span_checks, and expect.propagation.
var (
	tracesFields     = set("spans", "traces", "window_spans", "linked_proxies", "linked_traces", "span_checks")
	spanCheckFields  = set("where", "count", "tags", "every")
	spanWhereFields  = set("service_name", "kind", "name", "parent_id", "tags")
	propagationField = set("saw", "equals", "not_equals", "matches", "unique", "absent", "fraction")
)

// tracesUnknown lists the fields of expect.traces and expect.propagation
// this runner does not know.
func tracesUnknown(raw map[string]any) []string {
	var unknown []string
	if tr, ok := rawField(raw, "expect", "traces"); ok {
		m, _ := tr.(map[string]any)
		unknown = append(unknown, prefixed("expect", unknownFields(map[string]any{"traces": m}, "traces", tracesFields))...)
		for i, sc := range mapsOf(m["span_checks"]) {
			for _, f := range unknownFields(map[string]any{"x": sc}, "x", spanCheckFields) {
				unknown = append(unknown, fmt.Sprintf("expect.traces.span_checks[%d].%s", i, strings.TrimPrefix(f, "x.")))
			}
			where, _ := sc["where"].(map[string]any)
			for k := range where {
				if !spanWhereFields[k] {
					unknown = append(unknown, fmt.Sprintf("expect.traces.span_checks[%d].where.%s", i, k))
				}
			}
		}
	}
	unknown = append(unknown, entryFieldsUnknown(raw, "propagation", propagationField)...)
	return unknown
}

func mapsOf(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// exchange is one request of a check: the headers the client sent, and
// those the backend saw (nil when no backend answered).
type exchange struct {
	sent, saw http.Header
}

// headerPart reads header h, or a part of it after '#': for traceparent
// version, trace_id, parent_id, flags; for b3 trace_id, span_id, sampled,
// parent_id. ok is false when the header (or the part) is absent.
func headerPart(hdr http.Header, spec string) (string, bool) {
	name, part, _ := strings.Cut(spec, "#")
	v := hdr.Get(name)
	if v == "" {
		_, present := hdr[http.CanonicalHeaderKey(name)]
		if !present || part != "" {
			return "", false
		}
	}
	if part == "" {
		return v, true
	}
	fields := strings.Split(v, "-")
	var names []string
	switch strings.ToLower(name) {
	case "traceparent":
		names = []string{"version", "trace_id", "parent_id", "flags"}
	case "b3":
		if len(fields) == 1 { // "b3: 0": only a sampling decision
			fields = []string{"", "", fields[0]}
		}
		names = []string{"trace_id", "span_id", "sampled", "parent_id"}
	default:
		return "", false
	}
	for i, n := range names {
		if n == part && i < len(fields) && fields[i] != "" {
			return fields[i], true
		}
	}
	return "", false
}

// evalPropagation judges expect.propagation over the exchanges that
// reached a backend.
func evalPropagation(props []map[string]any, xs []exchange) []string {
	var reached []exchange
	for _, x := range xs {
		if x.saw != nil {
			reached = append(reached, x)
		}
	}
	if len(props) > 0 && len(reached) == 0 {
		return []string{"propagation: no request reached a backend"}
	}
	var p []string
	for _, prop := range props {
		p = append(p, evalRelation(prop, reached)...)
	}
	return p
}

func evalRelation(prop map[string]any, xs []exchange) []string {
	spec, _ := prop["saw"].(string)
	operand := func(x exchange, v any) (string, bool) {
		s := fmt.Sprint(v)
		switch {
		case strings.HasPrefix(s, "sent:"):
			return headerPart(x.sent, strings.TrimPrefix(s, "sent:"))
		case strings.HasPrefix(s, "saw:"):
			return headerPart(x.saw, strings.TrimPrefix(s, "saw:"))
		}
		return s, true
	}
	var re *regexp.Regexp
	if m, ok := prop["matches"]; ok {
		var err error
		if re, err = regexp.Compile("^(?:" + fmt.Sprint(m) + ")$"); err != nil {
			return []string{fmt.Sprintf("propagation %s: matches: %v", spec, err)}
		}
	}
	frac, isFrac := prop["fraction"].(map[string]any)
	seen := map[string]int{}
	equal, bad := 0, 0
	var first string
	for i, x := range xs {
		v, ok := headerPart(x.saw, spec)
		if isFrac {
			// A fraction judges the share only; an absent header counts
			// as another value.
			if ok && v == fmt.Sprint(frac["value"]) {
				equal++
			}
			continue
		}
		problem := ""
		switch {
		case prop["absent"] == true:
			if ok {
				problem = fmt.Sprintf("present (%q), want absent", v)
			}
		case !ok:
			problem = "absent"
		default:
			if w, has := prop["equals"]; has {
				if want, wok := operand(x, w); !wok || v != want {
					problem = fmt.Sprintf("%q, want equal to %v (%q)", v, w, want)
				}
			}
			if w, has := prop["not_equals"]; has {
				if other, wok := operand(x, w); wok && v == other {
					problem = fmt.Sprintf("%q, want different from %v", v, w)
				}
			}
			if re != nil && !re.MatchString(v) {
				problem = fmt.Sprintf("%q does not match %s", v, re)
			}
			if prop["unique"] == true {
				if j, dup := seen[v]; dup {
					problem = fmt.Sprintf("%q, the same as request %d's", v, j+1)
				}
				seen[v] = i
			}
		}
		if problem != "" {
			if bad == 0 {
				first = fmt.Sprintf("request %d: %s", i+1, problem)
			}
			bad++
		}
	}
	if isFrac {
		lo, hi := countRange(frac["range"])
		got := float64(equal) / float64(len(xs))
		if got < lo-1e-9 || got > hi+1e-9 {
			return []string{fmt.Sprintf("propagation %s: %q on %d of %d requests (%.3f), want within [%v, %v]",
				spec, fmt.Sprint(frac["value"]), equal, len(xs), got, lo, hi)}
		}
		return nil
	}
	if bad > 0 {
		return []string{fmt.Sprintf("propagation %s: %d of %d requests fail; first: %s", spec, bad, len(xs), first)}
	}
	return nil
}

// traceIDs are the trace ids and request ids a check's exchanges carried.
func traceIDs(xs []exchange) (traces, requests map[string]bool) {
	traces, requests = map[string]bool{}, map[string]bool{}
	for _, x := range xs {
		for _, h := range []http.Header{x.sent, x.saw} {
			if h == nil {
				continue
			}
			for _, spec := range []string{"x-b3-traceid", "b3#trace_id", "traceparent#trace_id"} {
				if v, ok := headerPart(h, spec); ok {
					traces[normTraceID(v)] = true
				}
			}
			if id := h.Get("X-Request-Id"); id != "" {
				requests[id] = true
			}
		}
	}
	return traces, requests
}

// normTraceID is a trace id as 32 lower-case hex digits (a 64-bit B3 id
// padded, as Zipkin stores it when it is widened).
func normTraceID(id string) string {
	id = strings.ToLower(id)
	if len(id) < 32 {
		id = strings.Repeat("0", 32-len(id)) + id
	}
	return id
}

// checkSpans picks the spans of window that belong to the check: by trace
// id or request id; when no request reached a backend, by http.url
// containing path.
func checkSpans(window []*testenv.ZipkinSpan, xs []exchange, path string) []*testenv.ZipkinSpan {
	traces, requests := traceIDs(xs)
	reached := false
	for _, x := range xs {
		reached = reached || x.saw != nil
	}
	var out []*testenv.ZipkinSpan
	for _, s := range window {
		switch {
		case traces[normTraceID(s.TraceID)], requests[s.Tags["guid:x-request-id"]]:
			out = append(out, s)
		case !reached && path != "" && strings.Contains(s.Tags["http.url"], path):
			out = append(out, s)
		}
	}
	return out
}

// evalTraces judges expect.traces on the spans of the check (mine) and
// every span received during it (window).
func evalTraces(spec map[string]any, mine, window []*testenv.ZipkinSpan) []string {
	var p []string
	inRange := func(what string, n int, v any) {
		if lo, hi := countRange(v); float64(n) < lo || float64(n) > hi {
			p = append(p, fmt.Sprintf("traces: %s %d, want %v to %v", what, n, lo, hi))
		}
	}
	byTrace := map[string][]*testenv.ZipkinSpan{}
	for _, s := range mine {
		byTrace[normTraceID(s.TraceID)] = append(byTrace[normTraceID(s.TraceID)], s)
	}
	if v, ok := spec["spans"]; ok {
		inRange("spans of the check's requests", len(mine), v)
	}
	if v, ok := spec["traces"]; ok {
		inRange("traces of the check's requests", len(byTrace), v)
	}
	if v, ok := spec["window_spans"]; ok {
		inRange("spans received during the check", len(window), v)
	}
	if n, ok := spec["linked_proxies"].(float64); ok {
		linked := 0
		for _, spans := range byTrace {
			if maxLinkedProxies(spans) >= int(n) {
				linked++
			}
		}
		want := spec["linked_traces"]
		if want == nil {
			want = []any{1.0, nil}
		}
		inRange(fmt.Sprintf("traces joining spans of %d proxies by parent ids", int(n)), linked, want)
	}
	for i, sc := range mapsOf(spec["span_checks"]) {
		p = append(p, evalSpanCheck(i, sc, mine)...)
	}
	return p
}

// maxLinkedProxies is the most proxies whose spans one tree of parent
// links joins within a trace.
func maxLinkedProxies(spans []*testenv.ZipkinSpan) int {
	parent := map[string]string{}
	for _, s := range spans {
		parent[s.ID] = s.ID
	}
	find := func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, s := range spans {
		if _, ok := parent[s.ParentID]; ok && s.ParentID != "" {
			parent[find(s.ID)] = find(s.ParentID)
		}
	}
	proxies := map[string]map[string]bool{}
	best := 0
	for _, s := range spans {
		root := find(s.ID)
		if proxies[root] == nil {
			proxies[root] = map[string]bool{}
		}
		proxies[root][spanProxy(s)] = true
		best = max(best, len(proxies[root]))
	}
	return best
}

func evalSpanCheck(i int, sc map[string]any, spans []*testenv.ZipkinSpan) []string {
	where, _ := sc["where"].(map[string]any)
	var selected []*testenv.ZipkinSpan
	for _, s := range spans {
		if spanMatches(s, where) {
			selected = append(selected, s)
		}
	}
	what := fmt.Sprintf("traces: span_checks[%d] (where %v)", i, where)
	var p []string
	if v, ok := sc["count"]; ok {
		if lo, hi := countRange(v); float64(len(selected)) < lo || float64(len(selected)) > hi {
			p = append(p, fmt.Sprintf("%s: %d spans, want %v to %v", what, len(selected), lo, hi))
		}
	}
	tags, _ := sc["tags"].(map[string]any)
	if len(tags) == 0 {
		return p
	}
	carrying := 0
	var example map[string]string
	for _, s := range selected {
		if labelsMatch(s.Tags, tags) {
			carrying++
		} else if example == nil {
			example = s.Tags
		}
	}
	switch every := sc["every"] == true; {
	case len(selected) == 0:
		p = append(p, fmt.Sprintf("%s: no span to carry tags %v", what, tags))
	case every && carrying < len(selected):
		p = append(p, fmt.Sprintf("%s: %d of %d spans lack tags %v; one has %v", what, len(selected)-carrying, len(selected), tags, example))
	case !every && carrying == 0:
		p = append(p, fmt.Sprintf("%s: no span carries tags %v; one has %v", what, tags, example))
	}
	return p
}

func spanMatches(s *testenv.ZipkinSpan, where map[string]any) bool {
	for k, w := range where {
		switch k {
		case "service_name":
			if !valueMatches(s.ServiceName(), true, map[string]any{"regex": w}) {
				return false
			}
		case "name":
			if !valueMatches(s.Name, true, map[string]any{"regex": w}) {
				return false
			}
		case "kind":
			if !strings.EqualFold(s.Kind, fmt.Sprint(w)) {
				return false
			}
		case "parent_id":
			if !valueMatches(s.ParentID, s.ParentID != "", w) {
				return false
			}
		case "tags":
			m, _ := w.(map[string]any)
			if !labelsMatch(s.Tags, m) {
				return false
			}
		}
	}
	return true
}

// Settling: spans are exported in batches (Envoy's Zipkin reporter
// flushes every 5 s), so expectations are retried for expect.settle
// (default 10 s), and one that allows no span waits a flush first.
const (
	defaultSettle = 10 * time.Second
	spanFlush     = 6 * time.Second
)

// allowsNone reports whether spec accepts zero spans somewhere (a range
// starting at 0), so a first look right after the requests proves nothing.
func allowsNone(spec map[string]any) bool {
	for _, k := range []string{"spans", "traces", "window_spans", "linked_traces"} {
		if v, ok := spec[k]; ok {
			if lo, _ := countRange(v); lo <= 0 {
				return true
			}
		}
	}
	for _, sc := range mapsOf(spec["span_checks"]) {
		if lo, _ := countRange(sc["count"]); sc["count"] != nil && lo <= 0 {
			return true
		}
	}
	return false
}

// settleOf reads expect.settle ("10s", or seconds as a number).
func settleOf(raw map[string]any) time.Duration {
	v, ok := rawField(raw, "expect", "settle")
	if !ok {
		return defaultSettle
	}
	switch s := v.(type) {
	case float64:
		return time.Duration(s * float64(time.Second))
	case string:
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	return defaultSettle
}

// judgeTraces evaluates expect.traces on what the case's collectors
// received since start.
func (e *istioEnv) judgeTraces(ch *Check, spec map[string]any, xs []exchange, start time.Time) []string {
	var window []*testenv.ZipkinSpan
	for _, c := range e.collectors {
		spans, errs := c.Since(start)
		if len(errs) > 0 {
			return []string{"zipkin collector: " + strings.Join(errs, "; ")}
		}
		window = append(window, spans...)
	}
	return evalTraces(spec, checkSpans(window, xs, ch.Request.Path), window)
}
