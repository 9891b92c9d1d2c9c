package dashboard

import (
	"net/http"
	"strconv"

	"github.com/openzipkin/zipkin-go/model"

	"github.com/sluice-mesh/sluice/pkg/tracestore"
)

// Traces is the Zipkin collector the dashboard's Traces pages read;
// `sluice control` serves its Zipkin API at /api/v2/.
func (d *Dashboard) Traces() *tracestore.Store { return d.opts.Traces }

// tracesLimit bounds the Traces page (default 50 rows).
const tracesLimit = 200

// tracesPage is GET api/traces: the recent traces, newest first, of a
// service when ?service= names one.
type tracesPage struct {
	Service  string               `json:"service"`
	Services []string             `json:"services"`
	Traces   []tracestore.Summary `json:"traces"`
	Stats    tracestore.Stats     `json:"stats"`
}

func (d *Dashboard) traces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limit = min(v, tracesLimit)
	}
	st := d.opts.Traces
	page := tracesPage{Service: q.Get("service"), Services: st.Services(), Traces: []tracestore.Summary{}, Stats: st.Stats()}
	for _, t := range st.Traces(tracestore.Query{ServiceName: page.Service, Limit: limit}) {
		page.Traces = append(page.Traces, tracestore.Summarize(t))
	}
	writeJSON(w, http.StatusOK, page)
}

// tracePage is GET api/trace?id=: one trace as a waterfall.
type tracePage struct {
	Summary tracestore.Summary         `json:"summary"`
	Spans   []tracestore.WaterfallSpan `json:"spans"`
}

func (d *Dashboard) trace(w http.ResponseWriter, r *http.Request) {
	id, err := model.TraceIDFromHex(r.URL.Query().Get("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "trace id: " + err.Error()})
		return
	}
	spans := d.opts.Traces.Trace(id)
	if spans == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "trace " + id.String() + " is not kept (the collector keeps the most recent ones)"})
		return
	}
	writeJSON(w, http.StatusOK, tracePage{Summary: tracestore.Summarize(spans), Spans: tracestore.Waterfall(spans)})
}
