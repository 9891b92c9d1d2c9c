// Package tracestore is the control plane's Zipkin collector: it keeps
// the spans proxies report (Zipkin v2, pkg/proxy/tracing's zipkin
// exporter) in a bounded ring of recent traces and answers the part of
// Zipkin's query API a UI needs (api.go). It stands in for the Zipkin
// add-on of Istio's samples/addons, in memory only.
package tracestore

import (
	"container/list"
	"sort"
	"sync"
	"time"

	"github.com/openzipkin/zipkin-go/model"
)

// Options bound the store; zero fields take the defaults.
type Options struct {
	// MaxTraces is how many traces are kept (default 1000); the trace
	// whose first span arrived first is evicted.
	MaxTraces int
	// MaxSpans is how many spans are kept in all (default 20000).
	MaxSpans int
	// MaxSpansPerTrace caps one trace (default 1000); spans beyond it are
	// dropped and counted.
	MaxSpansPerTrace int
}

// Store is a bounded, concurrency-safe ring of recent traces. Its lock
// is held only to link spans in or copy them out, never while decoding,
// encoding or writing to the network.
type Store struct {
	opts Options

	mu      sync.Mutex
	traces  map[model.TraceID]*list.Element // of *trace
	order   list.List                       // oldest first
	spans   int
	stats   Stats
	nowFunc func() time.Time
}

type trace struct {
	id    model.TraceID
	spans []model.SpanModel
}

// Stats count what the store took in and let go.
type Stats struct {
	Traces         int   `json:"traces"`
	Spans          int   `json:"spans"`
	SpansAccepted  int64 `json:"spans_accepted"`
	SpansDropped   int64 `json:"spans_dropped"`
	TracesEvicted  int64 `json:"traces_evicted"`
	MaxTraces      int   `json:"max_traces"`
	MaxSpans       int   `json:"max_spans"`
	RejectedBodies int64 `json:"rejected_bodies"`
}

// New makes an empty store.
func New(opts Options) *Store {
	if opts.MaxTraces <= 0 {
		opts.MaxTraces = 1000
	}
	if opts.MaxSpans <= 0 {
		opts.MaxSpans = 20000
	}
	if opts.MaxSpansPerTrace <= 0 {
		opts.MaxSpansPerTrace = 1000
	}
	opts.MaxSpansPerTrace = min(opts.MaxSpansPerTrace, opts.MaxSpans)
	return &Store{opts: opts, traces: map[model.TraceID]*list.Element{}, nowFunc: time.Now}
}

// Add stores spans, evicting the oldest traces past the bounds.
func (s *Store) Add(spans []model.SpanModel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		e, ok := s.traces[sp.TraceID]
		if !ok {
			for s.order.Len() >= s.opts.MaxTraces {
				s.evictOldest()
			}
			e = s.order.PushBack(&trace{id: sp.TraceID})
			s.traces[sp.TraceID] = e
		}
		t := e.Value.(*trace)
		if len(t.spans) >= s.opts.MaxSpansPerTrace {
			s.stats.SpansDropped++
			continue
		}
		for s.spans >= s.opts.MaxSpans && s.order.Front() != e {
			s.evictOldest()
		}
		if s.spans >= s.opts.MaxSpans {
			// Only this trace, the oldest, is left to evict: its late span
			// goes rather than the newer traces.
			s.stats.SpansDropped++
			continue
		}
		t.spans = append(t.spans, sp)
		s.spans++
		s.stats.SpansAccepted++
	}
}

func (s *Store) evictOldest() {
	e := s.order.Front()
	t := e.Value.(*trace)
	s.order.Remove(e)
	delete(s.traces, t.id)
	s.spans -= len(t.spans)
	s.stats.TracesEvicted++
}

func (s *Store) rejected() {
	s.mu.Lock()
	s.stats.RejectedBodies++
	s.mu.Unlock()
}

// Stats is the store's size and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Traces, st.Spans, st.MaxTraces, st.MaxSpans = s.order.Len(), s.spans, s.opts.MaxTraces, s.opts.MaxSpans
	return st
}

// Trace is the spans of trace id (nil when it is not kept), sorted by
// start time. Stored spans are never changed, so they are shared.
func (s *Store) Trace(id model.TraceID) []model.SpanModel {
	s.mu.Lock()
	e, ok := s.traces[id]
	var out []model.SpanModel
	if ok {
		out = append(out, e.Value.(*trace).spans...)
	}
	s.mu.Unlock()
	sortSpans(out)
	return out
}

// Query selects traces as Zipkin's GET /api/v2/traces does.
type Query struct {
	// ServiceName, when set, keeps traces with a span of that local service.
	ServiceName string
	// SpanName, when set, keeps traces with a span of that name.
	SpanName string
	// End and Lookback bound the traces' first span start (default now
	// and 24 h, Zipkin's).
	End      time.Time
	Lookback time.Duration
	// Limit is the most traces answered (default 10), newest first.
	Limit int
}

// Traces are the traces q selects, newest first, each sorted by start.
func (s *Store) Traces(q Query) [][]model.SpanModel {
	if q.End.IsZero() {
		q.End = s.nowFunc()
	}
	if q.Lookback <= 0 {
		q.Lookback = 24 * time.Hour
	}
	if q.Limit <= 0 {
		q.Limit = 10
	}
	begin := q.End.Add(-q.Lookback)
	var out [][]model.SpanModel
	s.mu.Lock()
	// Newest arrivals first; a trace's spans arrive within seconds, so
	// arrival order is start order but for clock skew (sorted below).
	for e := s.order.Back(); e != nil && len(out) < q.Limit; e = e.Prev() {
		t := e.Value.(*trace)
		start := first(t.spans)
		if (!start.IsZero() && (start.Before(begin) || start.After(q.End))) || !matches(t.spans, q) {
			continue
		}
		out = append(out, append([]model.SpanModel(nil), t.spans...))
	}
	s.mu.Unlock()
	for _, t := range out {
		sortSpans(t)
	}
	sort.SliceStable(out, func(i, j int) bool { return first(out[i]).After(first(out[j])) })
	return out
}

// Services are the local service names of the kept spans, sorted.
func (s *Store) Services() []string {
	return s.names(func(sp *model.SpanModel) string {
		if sp.LocalEndpoint == nil {
			return ""
		}
		return sp.LocalEndpoint.ServiceName
	})
}

// SpanNames are the span names service reported, sorted.
func (s *Store) SpanNames(service string) []string {
	return s.names(func(sp *model.SpanModel) string {
		if sp.LocalEndpoint == nil || sp.LocalEndpoint.ServiceName != service {
			return ""
		}
		return sp.Name
	})
}

func (s *Store) names(of func(*model.SpanModel) string) []string {
	seen := map[string]bool{}
	s.mu.Lock()
	for e := s.order.Front(); e != nil; e = e.Next() {
		for i := range e.Value.(*trace).spans {
			if n := of(&e.Value.(*trace).spans[i]); n != "" {
				seen[n] = true
			}
		}
	}
	s.mu.Unlock()
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func matches(spans []model.SpanModel, q Query) bool {
	svc, name := q.ServiceName == "", q.SpanName == ""
	for i := range spans {
		sp := &spans[i]
		if !svc && sp.LocalEndpoint != nil && sp.LocalEndpoint.ServiceName == q.ServiceName {
			svc = true
		}
		if !name && sp.Name == q.SpanName {
			name = true
		}
	}
	return svc && name
}

// first is the earliest start of spans (zero when none has one).
func first(spans []model.SpanModel) time.Time {
	var t time.Time
	for i := range spans {
		if ts := spans[i].Timestamp; !ts.IsZero() && (t.IsZero() || ts.Before(t)) {
			t = ts
		}
	}
	return t
}

func sortSpans(spans []model.SpanModel) {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Timestamp.Before(spans[j].Timestamp) })
}
