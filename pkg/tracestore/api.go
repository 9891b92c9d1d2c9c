package tracestore

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openzipkin/zipkin-go/model"
)

// Body limits of POST /api/v2/spans: what arrives, and what it inflates
// to when gzipped (a zip bomb is cut, not decoded).
const (
	MaxBodyBytes    = 4 << 20
	MaxDecodedBytes = 16 << 20
	// MaxLimit caps ?limit= of GET /api/v2/traces.
	MaxLimit = 1000
)

// Handler is Zipkin's collector and query API over s (the subset a UI
// and Grafana's Zipkin data source use), mounted at /api/v2/:
//
//	POST /api/v2/spans                     Zipkin v2 JSON spans, gzip or not (202)
//	GET  /api/v2/traces?serviceName=&spanName=&endTs=&lookback=&limit=
//	GET  /api/v2/trace/{traceId}
//	GET  /api/v2/services
//	GET  /api/v2/spans?serviceName=        the service's span names
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/spans", s.post)
	mux.HandleFunc("GET /api/v2/spans", func(w http.ResponseWriter, r *http.Request) {
		svc := r.URL.Query().Get("serviceName")
		if svc == "" {
			http.Error(w, "serviceName is required", http.StatusBadRequest)
			return
		}
		writeJSON(w, s.SpanNames(svc))
	})
	mux.HandleFunc("GET /api/v2/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Services())
	})
	mux.HandleFunc("GET /api/v2/trace/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := model.TraceIDFromHex(r.PathValue("id"))
		if err != nil {
			http.Error(w, fmt.Sprintf("trace id %q: %v", r.PathValue("id"), err), http.StatusBadRequest)
			return
		}
		spans := s.Trace(id)
		if spans == nil {
			http.Error(w, "trace "+id.String()+" not found", http.StatusNotFound)
			return
		}
		writeJSON(w, spans)
	})
	mux.HandleFunc("GET /api/v2/traces", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseQuery(r.URL.Query().Get)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := s.Traces(q)
		if out == nil {
			out = [][]model.SpanModel{}
		}
		writeJSON(w, out)
	})
	return mux
}

// ParseQuery reads Zipkin's trace query parameters (endTs and lookback in
// milliseconds).
func ParseQuery(get func(string) string) (Query, error) {
	q := Query{ServiceName: get("serviceName"), SpanName: get("spanName")}
	if q.SpanName == "all" {
		q.SpanName = ""
	}
	for _, p := range []struct {
		name string
		set  func(int64)
	}{
		{"endTs", func(v int64) { q.End = time.UnixMilli(v) }},
		{"lookback", func(v int64) { q.Lookback = time.Duration(v) * time.Millisecond }},
		{"limit", func(v int64) { q.Limit = int(min(v, MaxLimit)) }},
	} {
		v := get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("%s=%q: not a positive integer", p.name, v)
		}
		p.set(n)
	}
	return q, nil
}

func (s *Store) post(w http.ResponseWriter, r *http.Request) {
	spans, status, err := decode(w, r)
	if err != nil {
		s.rejected()
		http.Error(w, "zipkin spans: "+err.Error(), status)
		return
	}
	s.Add(spans)
	w.WriteHeader(http.StatusAccepted)
}

// decode reads a POST's Zipkin v2 JSON list of spans.
func decode(w http.ResponseWriter, r *http.Request) ([]model.SpanModel, int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: only application/json (Zipkin v2 JSON) is accepted", ct)
		}
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q: only gzip is accepted", enc)
	}
	raw, err := io.ReadAll(io.LimitReader(body, MaxDecodedBytes+1))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", MaxBodyBytes)
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("read: %w", err)
	case len(raw) > MaxDecodedBytes:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes decoded", MaxDecodedBytes)
	}
	var spans []model.SpanModel
	if err := json.Unmarshal(raw, &spans); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("not a Zipkin v2 JSON list of spans: %w", err)
	}
	for i := range spans {
		if spans[i].TraceID.Empty() {
			return nil, http.StatusBadRequest, fmt.Errorf("span %d (%s): no traceId", i, spans[i].ID)
		}
	}
	return spans, 0, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
