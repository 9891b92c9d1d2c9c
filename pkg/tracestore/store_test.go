package tracestore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openzipkin/zipkin-go/model"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// spanJSON is a Zipkin v2 span as a client posts it.
func spanJSON(trace, id, parent, svc, name string, tsUS, durUS int64, tags string) string {
	p := ""
	if parent != "" {
		p = `"parentId":"` + parent + `",`
	}
	return fmt.Sprintf(`{"traceId":%q,"id":%q,%s"name":%q,"kind":"SERVER","timestamp":%d,"duration":%d,"localEndpoint":{"serviceName":%q},"tags":{%s}}`,
		trace, id, p, name, tsUS, durUS, svc, tags)
}

func post(t *testing.T, url string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/api/v2/spans", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestCollectorQueryAPI posts a two-span trace (plain and gzipped) and
// another service's trace, then reads them back as a Zipkin UI would.
func TestCollectorQueryAPI(t *testing.T) {
	st := New(Options{})
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	now := time.Now().UnixMicro()
	tid := "463ac35c9f6413ad48485a3953bb6124"
	parent := spanJSON(tid, "a2fb4a1d1a96d312", "", "sleep.default", "get /", now, 3000, `"component":"proxy"`)
	child := spanJSON(tid, "b7ad6b7169203331", "a2fb4a1d1a96d312", "ratings.default", "get /", now+500, 2000, `"error":"true","http.status_code":"503"`)
	if code, body := post(t, srv.URL, []byte("["+parent+"]"), nil); code != 202 {
		t.Fatalf("post: %d %s", code, body)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("[" + child + "," + spanJSON("0000000000000001", "0000000000000002", "", "other.default", "op", now-5e6, 10, "") + "]"))
	zw.Close()
	if code, body := post(t, srv.URL, gz.Bytes(), map[string]string{"Content-Encoding": "gzip"}); code != 202 {
		t.Fatalf("gzip post: %d %s", code, body)
	}

	var services []string
	getJSON(t, srv.URL+"/api/v2/services", &services)
	if strings.Join(services, ",") != "other.default,ratings.default,sleep.default" {
		t.Errorf("services %v", services)
	}
	var traces [][]model.SpanModel
	getJSON(t, srv.URL+"/api/v2/traces?serviceName=ratings.default&limit=10", &traces)
	if len(traces) != 1 || len(traces[0]) != 2 || traces[0][0].ID.String() != "a2fb4a1d1a96d312" {
		t.Fatalf("traces of ratings: %+v", traces)
	}
	getJSON(t, srv.URL+"/api/v2/traces", &traces)
	if len(traces) != 2 || traces[0][0].TraceID.String() != tid {
		t.Errorf("all traces, newest first: %+v", traces)
	}
	getJSON(t, srv.URL+"/api/v2/traces?lookback=2000", &traces)
	if len(traces) != 1 {
		t.Errorf("lookback 2s kept %d traces, want the recent one", len(traces))
	}
	var one []model.SpanModel
	if code := getJSON(t, srv.URL+"/api/v2/trace/"+tid, &one); code != 200 || len(one) != 2 || one[1].ParentID == nil || one[1].Tags["error"] != "true" {
		t.Errorf("trace: %d %+v", code, one)
	}
	if code := getJSON(t, srv.URL+"/api/v2/trace/ffffffffffffffff", &one); code != 404 {
		t.Errorf("unknown trace: %d", code)
	}
	if code := getJSON(t, srv.URL+"/api/v2/trace/zz", &one); code != 400 {
		t.Errorf("bad trace id: %d", code)
	}
	var names []string
	getJSON(t, srv.URL+"/api/v2/spans?serviceName=other.default", &names)
	if len(names) != 1 || names[0] != "op" {
		t.Errorf("span names %v", names)
	}

	sum := Summarize(st.Trace(one[0].TraceID))
	if sum.Root != "get /" || sum.RootService != "sleep.default" || sum.Spans != 2 || sum.Errors != 1 || sum.DurationUS != 3000 ||
		strings.Join(sum.Services, ",") != "ratings.default,sleep.default" {
		t.Errorf("summary %+v", sum)
	}
}

// TestCollectorBadInput: what is not a Zipkin v2 JSON post is refused
// with a reason, stores nothing, and the store keeps what it had.
func TestCollectorBadInput(t *testing.T) {
	st := New(Options{})
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	ok := spanJSON("0000000000000001", "0000000000000002", "", "a", "op", 1, 1, "")
	post(t, srv.URL, []byte("["+ok+"]"), nil)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte("[" + strings.Repeat(" ", MaxDecodedBytes+10)))
	zw.Close()
	for name, c := range map[string]struct {
		body   []byte
		header map[string]string
		code   int
		reason string
	}{
		"not json":          {[]byte("hello"), nil, 400, "not a Zipkin v2 JSON list"},
		"object not list":   {[]byte(ok), nil, 400, "not a Zipkin v2 JSON list"},
		"no span id":        {[]byte(`[{"traceId":"0000000000000001","name":"x"}]`), nil, 400, "valid span id"},
		"no trace id":       {[]byte(`[{"id":"0000000000000003","name":"x"}]`), nil, 400, "no traceId"},
		"bad trace id":      {[]byte(`[{"traceId":"xyz","id":"0000000000000003"}]`), nil, 400, "not a Zipkin"},
		"protobuf":          {[]byte("\x0a\x01"), map[string]string{"Content-Type": "application/x-protobuf"}, 415, "only application/json"},
		"bad gzip":          {[]byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, 400, "gzip"},
		"deflate":           {[]byte("x"), map[string]string{"Content-Encoding": "deflate"}, 415, "only gzip"},
		"too large":         {bytes.Repeat([]byte(" "), MaxBodyBytes+1), nil, 413, "body over"},
		"gzip inflates big": {bomb.Bytes(), map[string]string{"Content-Encoding": "gzip"}, 413, "decoded"},
	} {
		code, body := post(t, srv.URL, c.body, c.header)
		if code != c.code || !strings.Contains(body, c.reason) {
			t.Errorf("%s: %d %q, want %d with %q", name, code, body, c.code, c.reason)
		}
	}
	if s := st.Stats(); s.Traces != 1 || s.Spans != 1 || s.RejectedBodies != 10 {
		t.Errorf("stats after bad posts: %+v", s)
	}
	for _, q := range []string{"limit=-1", "lookback=x", "endTs=0"} {
		var v any
		if code := getJSON(t, srv.URL+"/api/v2/traces?"+q, &v); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

// TestStoreBounds: past MaxTraces or MaxSpans the oldest traces go, and
// a trace past MaxSpansPerTrace drops its extra spans.
func TestStoreBounds(t *testing.T) {
	st := New(Options{MaxTraces: 4, MaxSpans: 5, MaxSpansPerTrace: 2})
	span := func(trace, id uint64) model.SpanModel {
		return model.SpanModel{SpanContext: model.SpanContext{TraceID: model.TraceID{Low: trace}, ID: model.ID(id)},
			Timestamp: time.Now(), LocalEndpoint: &model.Endpoint{ServiceName: "svc"}}
	}
	for tr := uint64(1); tr <= 5; tr++ {
		st.Add([]model.SpanModel{span(tr, 1)})
	}
	if s := st.Stats(); s.Traces != 4 || s.TracesEvicted != 1 || st.Trace(model.TraceID{Low: 1}) != nil || st.Trace(model.TraceID{Low: 5}) == nil {
		t.Fatalf("after 5 traces in 4: %+v", s)
	}
	st.Add([]model.SpanModel{span(5, 2), span(5, 3)})
	if s := st.Stats(); s.Spans != 5 || s.SpansDropped != 1 || len(st.Trace(model.TraceID{Low: 5})) != 2 {
		t.Fatalf("per-trace cap: %+v", s)
	}
	st.Add([]model.SpanModel{span(4, 2)}) // a 6th span: trace 2, the oldest, goes
	if s := st.Stats(); s.Spans != 5 || s.Traces != 3 || st.Trace(model.TraceID{Low: 2}) != nil || len(st.Trace(model.TraceID{Low: 4})) != 2 {
		t.Fatalf("span cap: %+v", s)
	}
	for i := uint64(10); i < 2000; i++ {
		st.Add([]model.SpanModel{span(i, 1), span(i, 2)})
		if s := st.Stats(); s.Spans > 5 || s.Traces > 4 {
			t.Fatalf("over the bounds: %+v", s)
		}
	}
	if got := st.Traces(Query{Limit: 10}); len(got) != 2 || got[0][0].TraceID.Low != 1999 {
		t.Errorf("newest traces: %d, first %v", len(got), got[0][0].TraceID)
	}
}

// TestWaterfallNesting: children follow their parent one level deeper;
// a span whose parent never arrived and a parent cycle still show.
func TestWaterfallNesting(t *testing.T) {
	t0 := time.Now()
	sp := func(id, parent uint64, at time.Duration) model.SpanModel {
		s := model.SpanModel{SpanContext: model.SpanContext{TraceID: model.TraceID{Low: 9}, ID: model.ID(id)}, Timestamp: t0.Add(at), Duration: time.Millisecond}
		if parent != 0 {
			p := model.ID(parent)
			s.ParentID = &p
		}
		return s
	}
	spans := []model.SpanModel{sp(1, 0, 0), sp(2, 1, time.Microsecond), sp(4, 99, 2*time.Microsecond), sp(3, 2, 3*time.Microsecond), sp(5, 1, 4*time.Microsecond),
		sp(7, 8, 5*time.Microsecond), sp(8, 7, 6*time.Microsecond)}
	var got []string
	for _, r := range Waterfall(spans) {
		got = append(got, fmt.Sprintf("%s@%d+%d", r.ID[15:], r.Depth, r.OffsetUS))
	}
	if want := "1@0+0 2@1+1 3@2+3 5@1+4 4@0+2 7@0+5 8@1+6"; strings.Join(got, " ") != want {
		t.Errorf("waterfall %s, want %s", strings.Join(got, " "), want)
	}
}

// TestOpenTelemetryZipkinExporter: the exporter the proxies use
// (pkg/proxy/tracing) posts to the collector and its spans read back
// with their parent links.
func TestOpenTelemetryZipkinExporter(t *testing.T) {
	st := New(Options{})
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	exp, err := zipkin.New(srv.URL + "/api/v2/spans")
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("productpage.default"))))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "outer", oteltrace.WithSpanKind(oteltrace.SpanKindServer))
	_, child := tp.Tracer("t").Start(ctx, "inner", oteltrace.WithSpanKind(oteltrace.SpanKindClient))
	child.End()
	parent.End()
	tp.Shutdown(context.Background())
	got := st.Traces(Query{ServiceName: "productpage.default"})
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("traces %+v", got)
	}
	rows := Waterfall(got[0])
	if rows[0].Name != "outer" || rows[0].Kind != "SERVER" || rows[1].Name != "inner" || rows[1].Depth != 1 || rows[1].ParentID != rows[0].ID {
		t.Errorf("waterfall %+v", rows)
	}
}
