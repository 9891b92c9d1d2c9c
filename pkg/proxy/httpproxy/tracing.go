package httpproxy

import (
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// The connection manager's tracing hook (pkg/proxy/tracing): a chain
// whose tracing block has a provider starts the request's span when the
// request arrives, names it after the matched route's decorator (or, on
// ingress, the x-envoy-decorator-operation the client sidecar sent), and
// finishes it when the request completes. A chain without one costs a
// nil check.

// startSpan begins q's span, before the ingress decorator header is
// removed, and writes the trace context into the request for upstream.
func (h *Handler) startSpan(q *request, chain *dataplane.FilterChain) {
	r := q.s.R
	// Named by the route (nameSpan), else when it finishes (finishSpan).
	name := ""
	if chain.Tracing == dataplane.TracingIngress {
		if op := r.Header.Get(router.DecoratorHeader); op != "" {
			name, q.spanNamed = op, true
		}
	}
	q.span = chain.Tracer.Start(h.shared.Tracing, r, q.s.Info.Start, name)
}

// nameSpan names q's span after the route's decorator and starts the
// upstream span, when the chain spawns one.
func nameSpan(q *request, rte *router.Route) {
	if !q.span.Active() {
		return
	}
	if rte.Operation != "" && !q.spanNamed {
		q.span.SetName(rte.Operation)
		q.spanNamed = true
	}
	if q.span.SpawnsUpstream() {
		name := rte.Operation
		if name == "" {
			name = q.s.R.Host + q.s.R.URL.Path
		}
		q.span.StartUpstream(q.s.R.Header, name)
	}
}

// finishSpan tags and ends q's spans.
func finishSpan(q *request) {
	if !q.span.Active() {
		return
	}
	if !q.spanNamed && q.span.Recording() {
		// No decorator (no route matched): Envoy's default,
		// <authority><path>.
		q.span.SetName(q.s.R.Host + q.s.R.URL.Path)
	}
	q.span.Finish(&tracing.FinishInput{Info: &q.s.Info, Req: q.s.R, RespHeader: q.w.Header(), Conn: q.s.Conn,
		Metadata: q.s.Metadata, End: time.Now()})
}

// ClustersOf finds a cluster of the runtime in force in rt (what a
// tracing.Env reaches collectors through).
func ClustersOf(rt *atomic.Pointer[dataplane.Runtime]) func(string) *upstream.Cluster {
	return func(name string) *upstream.Cluster {
		if cur := rt.Load(); cur != nil {
			return cur.Clusters[name]
		}
		return nil
	}
}
