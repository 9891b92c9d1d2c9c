package tracestore

import (
	"sort"
	"time"

	"github.com/openzipkin/zipkin-go/model"
)

// Summary is one line of the dashboard's Traces page.
type Summary struct {
	TraceID string `json:"trace_id"`
	// Root is the root span's name and service (the earliest span when no
	// span of the trace lacks a parent that was received).
	Root        string    `json:"root"`
	RootService string    `json:"root_service"`
	Services    []string  `json:"services"`
	Start       time.Time `json:"start"`
	DurationUS  int64     `json:"duration_us"`
	Spans       int       `json:"spans"`
	// Errors counts spans tagged error (Envoy's error=true on 5xx).
	Errors int `json:"errors"`
}

// WaterfallSpan is one row of a trace's waterfall: spans in depth-first
// order, children under their parent by start time.
type WaterfallSpan struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id,omitempty"`
	Name     string `json:"name"`
	Service  string `json:"service"`
	Kind     string `json:"kind"`
	// Depth is the nesting level (0 for roots and orphans).
	Depth int `json:"depth"`
	// OffsetUS is the start after the trace's start.
	OffsetUS   int64             `json:"offset_us"`
	DurationUS int64             `json:"duration_us"`
	Error      bool              `json:"error"`
	Tags       map[string]string `json:"tags"`
}

func service(sp *model.SpanModel) string {
	if sp.LocalEndpoint == nil {
		return ""
	}
	return sp.LocalEndpoint.ServiceName
}

func isError(sp *model.SpanModel) bool {
	_, ok := sp.Tags["error"]
	return ok
}

// Summarize sums up one trace's spans sorted by start (Store.Trace).
func Summarize(spans []model.SpanModel) Summary {
	if len(spans) == 0 {
		return Summary{}
	}
	rows := Waterfall(spans)
	root := rows[0]
	sum := Summary{TraceID: spans[0].TraceID.String(), Root: root.Name, RootService: root.Service,
		Start: first(spans), Spans: len(spans), Services: []string{}}
	seen := map[string]bool{}
	var end time.Time
	for i := range spans {
		sp := &spans[i]
		if s := service(sp); s != "" && !seen[s] {
			seen[s] = true
			sum.Services = append(sum.Services, s)
		}
		if isError(sp) {
			sum.Errors++
		}
		if e := sp.Timestamp.Add(sp.Duration); !sp.Timestamp.IsZero() && e.After(end) {
			end = e
		}
	}
	sort.Strings(sum.Services)
	if !end.IsZero() {
		sum.DurationUS = end.Sub(sum.Start).Microseconds()
	}
	return sum
}

// Waterfall orders spans (sorted by start) for display: each root, then
// its children depth-first. A span whose parent was not received is a
// root, and spans in a parent cycle are shown once each.
func Waterfall(spans []model.SpanModel) []WaterfallSpan {
	start := first(spans)
	ids := map[model.ID]bool{}
	for i := range spans {
		ids[spans[i].ID] = true
	}
	children := map[model.ID][]int{}
	var roots []int
	for i := range spans {
		if p := spans[i].ParentID; p != nil && *p != spans[i].ID && ids[*p] {
			children[*p] = append(children[*p], i)
			continue
		}
		roots = append(roots, i)
	}
	out := make([]WaterfallSpan, 0, len(spans))
	visited := map[model.ID]bool{}
	var walk func(i, depth int)
	walk = func(i, depth int) {
		sp := &spans[i]
		row := WaterfallSpan{ID: sp.ID.String(), Name: sp.Name, Service: service(sp), Kind: string(sp.Kind),
			Depth: depth, DurationUS: sp.Duration.Microseconds(), Error: isError(sp), Tags: sp.Tags}
		if sp.ParentID != nil {
			row.ParentID = sp.ParentID.String()
		}
		if !sp.Timestamp.IsZero() {
			row.OffsetUS = sp.Timestamp.Sub(start).Microseconds()
		}
		if row.Tags == nil {
			row.Tags = map[string]string{}
		}
		out = append(out, row)
		visited[sp.ID] = true
		for _, c := range children[sp.ID] {
			if !visited[spans[c].ID] {
				walk(c, depth+1)
			}
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	// Spans whose parents form a cycle have no root: shown at the end.
	for i := range spans {
		if !visited[spans[i].ID] {
			walk(i, 0)
		}
	}
	return out
}
