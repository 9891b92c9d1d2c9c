package tracing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// The request path: Envoy's connection manager starts the request's span
// when the request arrives (ConnectionManagerImpl::ActiveStream::
// traceRequest), names it after the route's decorator, passes the trace
// context upstream, and finishes the span with Envoy's standard tags when
// the request completes (HttpTracerUtility::finalizeDownstreamSpan).

var (
	b3Multi = b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
	w3c     = propagation.TraceContext{}
)

// Propagation headers Envoy's tracers read and write.
const (
	hdrB3Single   = "B3"
	hdrB3Sampled  = "X-B3-Sampled"
	hdrB3Flags    = "X-B3-Flags"
	hdrB3Parent   = "X-B3-Parentspanid"
	hdrTraceState = "Tracestate"
	hdrForceTrace = "X-Envoy-Force-Trace"
	hdrClientID   = "X-Client-Trace-Id"
)

// Span is one request's tracing: the connection manager's span and, with
// spawn_upstream_span, the upstream request's. The zero Span does
// nothing.
type Span struct {
	cfg  *Config
	span trace.Span
	up   trace.Span
}

// Active reports whether s traces a request.
func (s *Span) Active() bool { return s.span != nil }

type decisionKey struct{}

var errExporter = errors.New("tracing: no exporter")

// decisionSampler samples as the connection manager decided (Envoy's
// tracing decision, or the incoming context's sampled flag), carried in
// the context the span starts with.
type decisionSampler struct{}

func (decisionSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	ts := trace.SpanContextFromContext(p.ParentContext).TraceState()
	if d, _ := p.ParentContext.Value(decisionKey{}).(bool); d {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
	}
	if p.ParentContext.Value(decisionKey{}) == nil && trace.SpanContextFromContext(p.ParentContext).IsSampled() {
		// A child of a sampled span (the spawned upstream span).
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
}

func (decisionSampler) Description() string { return "sluice connection manager decision" }

// Start begins the span of request r, arrived at start, on a connection
// manager with config c, and (unless no_context_propagation) writes its
// trace context into r's headers for the upstream. name is the span's
// name until the route names it (SetName).
func (c *Config) Start(env *Env, r *http.Request, start time.Time, name string) Span {
	x, err := c.exporter(env)
	if err != nil {
		return Span{}
	}
	ctx, sampled := c.extract(r.Header)
	ctx = context.WithValue(ctx, decisionKey{}, sampled)
	_, sp := x.tracer.Start(ctx, name, c.kind, trace.WithTimestamp(start))
	s := Span{cfg: c, span: sp}
	if !c.SpawnUpstream {
		s.inject(r.Header, sp, trace.SpanContextFromContext(ctx).SpanID())
	}
	return s
}

// exporter is env's pipeline for c's collector, cached in c (a compiled
// config belongs to one proxy).
func (c *Config) exporter(env *Env) (*Exporter, error) {
	if x := c.x.Load(); x != nil {
		return x, nil
	}
	if c.failed.Load() {
		return nil, errExporter
	}
	x, err := env.Exporter(c.Exporter)
	if err != nil {
		// Not retried per request: the spec does not change until a push
		// replaces the config.
		if c.failed.CompareAndSwap(false, true) {
			env.opts.Logger.Warn("tracing: no exporter; spans of this connection manager are not reported", "cluster", c.Exporter.Cluster, "error", err)
		}
		return nil, err
	}
	c.x.Store(x)
	return x, nil
}

// extract reads the incoming trace context (B3 single or multi header,
// then W3C when configured; W3C alone for opentelemetry) and makes the
// sampling decision: the incoming one when it carries one, else Envoy's
// (x-envoy-force-trace, client sampling for x-client-trace-id, random
// sampling; then overall sampling).
func (c *Config) extract(h http.Header) (context.Context, bool) {
	ctx := context.Background()
	carrier := headerCarrier(h)
	var sc trace.SpanContext
	decided, sampled := false, false
	if c.B3 && (h[hdrB3Single] != nil || h["X-B3-Traceid"] != nil || h[hdrB3Sampled] != nil || h[hdrB3Flags] != nil) {
		ctx = b3Multi.Extract(ctx, carrier)
		sc = trace.SpanContextFromContext(ctx)
		decided, sampled = b3Decision(h, sc)
	}
	if !sc.IsValid() && c.W3C && h["Traceparent"] != nil {
		ctx = w3c.Extract(context.Background(), carrier)
		if sc = trace.SpanContextFromContext(ctx); sc.IsValid() {
			decided, sampled = true, sc.IsSampled()
		}
	}
	if !sc.IsValid() {
		ctx = context.Background()
	}
	if decided {
		return ctx, sampled
	}
	switch {
	case h.Get(hdrForceTrace) != "":
		sampled = true
	case h.Get(hdrClientID) != "":
		sampled = sample(c.Client)
	default:
		sampled = sample(c.Random)
	}
	return ctx, sampled && sample(c.Overall)
}

// headerCarrier is propagation.HeaderCarrier without its per-call key
// canonicalization for the propagators' own (lower-case) header names:
// those are looked up in canonical form directly, so reading and writing
// the trace context allocates only the values.
type headerCarrier http.Header

var canonicalTraceHeaders = map[string]string{
	"b3": "B3", "x-b3-traceid": "X-B3-Traceid", "x-b3-spanid": "X-B3-Spanid", "x-b3-parentspanid": "X-B3-Parentspanid",
	"x-b3-sampled": "X-B3-Sampled", "x-b3-flags": "X-B3-Flags", "traceparent": "Traceparent", "tracestate": "Tracestate",
}

func (c headerCarrier) Get(key string) string {
	if k, ok := canonicalTraceHeaders[key]; ok {
		if v := c[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return http.Header(c).Get(key)
}

func (c headerCarrier) Set(key, value string) {
	if k, ok := canonicalTraceHeaders[key]; ok {
		c[k] = []string{value}
		return
	}
	http.Header(c).Set(key, value)
}

func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// b3Decision is the sampling decision a B3 context carries, if any.
func b3Decision(h http.Header, sc trace.SpanContext) (decided, sampled bool) {
	if v := h.Get(hdrB3Single); v != "" {
		parts := strings.Split(v, "-")
		if len(parts) == 1 || len(parts) >= 3 {
			f := parts[0]
			if len(parts) >= 3 {
				f = parts[2]
			}
			return true, f == "1" || f == "d"
		}
		if sc.IsValid() {
			return false, false
		}
	}
	if h.Get(hdrB3Flags) == "1" {
		return true, true
	}
	if v := h.Get(hdrB3Sampled); v != "" {
		return true, v == "1" || strings.EqualFold(v, "true")
	}
	return false, false
}

// sample draws against a sampling in millionths.
func sample(millionths uint32) bool {
	return millionths >= 1_000_000 || (millionths > 0 && rand.Uint32N(1_000_000) < millionths)
}

// inject writes sp's context into h as the tracer does: B3 multi headers
// (x-b3-traceid, -spanid, -parentspanid, -sampled) for zipkin, W3C
// traceparent/tracestate for opentelemetry (and zipkin's W3C option).
func (s *Span) inject(h http.Header, sp trace.Span, parent trace.SpanID) {
	if s.cfg.NoPropagation {
		return
	}
	ctx := trace.ContextWithSpan(context.Background(), sp)
	carrier := headerCarrier(h)
	if s.cfg.B3 {
		delete(h, hdrB3Single)
		delete(h, hdrB3Flags)
		delete(h, hdrB3Parent)
		b3Multi.Inject(ctx, carrier)
		if parent.IsValid() {
			h[hdrB3Parent] = []string{parent.String()}
		}
	}
	if s.cfg.W3C {
		delete(h, hdrTraceState)
		w3c.Inject(ctx, carrier)
	}
}

// SetName names the span (the route's decorator operation).
func (s *Span) SetName(name string) {
	if s.span != nil {
		s.span.SetName(name)
	}
}

// SpawnsUpstream reports whether the upstream request gets its own span
// (StartUpstream).
func (s *Span) SpawnsUpstream() bool { return s.span != nil && s.cfg.SpawnUpstream && s.up == nil }

// Recording reports whether the span is sampled (its name and tags are
// reported).
func (s *Span) Recording() bool { return s.span != nil && s.span.IsRecording() }

// StartUpstream begins the upstream request's span, child of the
// connection manager's (spawn_upstream_span), and passes its context
// upstream in h. Without spawn_upstream_span it does nothing.
func (s *Span) StartUpstream(h http.Header, name string) {
	if s.span == nil || !s.cfg.SpawnUpstream || s.up != nil {
		return
	}
	x := s.cfg.x.Load()
	ctx := trace.ContextWithSpan(context.Background(), s.span)
	_, s.up = x.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	s.inject(h, s.up, s.span.SpanContext().SpanID())
}

// FinishInput is what the finished request's tags are read from.
type FinishInput struct {
	Info       *httpfilter.RequestInfo
	Req        *http.Request
	RespHeader http.Header
	Conn       *httpfilter.Conn
	Metadata   httpfilter.Metadata
	End        time.Time
}

// Finish tags and ends the request's spans (Envoy's
// finalizeDownstreamSpan and finalizeUpstreamSpan).
func (s *Span) Finish(in *FinishInput) {
	if s.span == nil {
		return
	}
	if !s.span.IsRecording() {
		if s.up != nil {
			s.up.End()
		}
		s.span.End()
		return
	}
	info := in.Info
	status := info.Status
	if s.up != nil {
		s.up.SetAttributes(s.upstreamTags(in)...)
		if status >= 500 || status == 0 {
			s.up.SetAttributes(attribute.String("error", "true"))
			s.up.SetStatus(codes.Error, "")
		}
		s.up.End(trace.WithTimestamp(in.End))
	}
	s.span.SetAttributes(s.downstreamTags(in)...)
	if status >= 500 || status == 0 {
		s.span.SetAttributes(attribute.String("error", "true"))
		s.span.SetStatus(codes.Error, "")
	}
	s.span.End(trace.WithTimestamp(in.End))
}

func (s *Span) downstreamTags(in *FinishInput) []attribute.KeyValue {
	r, info := in.Req, in.Info
	tags := make([]attribute.KeyValue, 0, 18+len(s.cfg.Tags))
	tags = append(tags,
		attribute.String("component", "proxy"),
		attribute.String("node_id", nodeID(s)),
		attribute.String("guid:x-request-id", r.Header.Get("X-Request-Id")),
		attribute.String("http.url", truncate(requestURL(r), s.cfg.MaxPathTag)),
		attribute.String("http.method", r.Method),
		attribute.String("downstream_cluster", orDash(r.Header.Get("X-Envoy-Downstream-Service-Cluster"))),
		attribute.String("user_agent", orDash(r.UserAgent())),
		attribute.String("http.protocol", r.Proto),
		attribute.String("request_size", strconv.FormatUint(info.BytesReceived, 10)),
		attribute.String("response_size", strconv.FormatUint(info.BytesSent, 10)),
		attribute.String("response_flags", info.Flags.String()),
		attribute.String("http.status_code", strconv.Itoa(info.Status)),
		attribute.String("upstream_cluster", orDash(info.Cluster)),
		attribute.String("upstream_cluster.name", orDash(info.Cluster)),
	)
	if in.Conn != nil && in.Conn.RemoteAddr.IsValid() {
		tags = append(tags, attribute.String("peer.address", in.Conn.RemoteAddr.Addr().String()))
	}
	if v := r.Header.Get(hdrClientID); v != "" {
		tags = append(tags, attribute.String("guid:x-client-trace-id", v))
	}
	if s.up == nil && info.Upstream != "" {
		tags = append(tags, attribute.String("upstream_address", info.Upstream))
	}
	for i := range s.cfg.Tags {
		if v, ok := s.cfg.Tags[i].value(in); ok {
			tags = append(tags, attribute.String(s.cfg.Tags[i].Name, v))
		}
	}
	return tags
}

func (s *Span) upstreamTags(in *FinishInput) []attribute.KeyValue {
	info := in.Info
	tags := []attribute.KeyValue{
		attribute.String("component", "proxy"),
		attribute.String("node_id", nodeID(s)),
		attribute.String("http.protocol", in.Req.Proto),
		attribute.String("upstream_cluster", orDash(info.Cluster)),
		attribute.String("upstream_cluster.name", orDash(info.Cluster)),
		attribute.String("http.status_code", strconv.Itoa(info.Status)),
		attribute.String("response_flags", info.Flags.String()),
	}
	if info.Upstream != "" {
		tags = append(tags, attribute.String("upstream_address", info.Upstream), attribute.String("peer.address", info.Upstream))
	}
	for i := range s.cfg.Tags {
		if v, ok := s.cfg.Tags[i].value(in); ok {
			tags = append(tags, attribute.String(s.cfg.Tags[i].Name, v))
		}
	}
	return tags
}

func nodeID(s *Span) string {
	if x := s.cfg.x.Load(); x != nil {
		return x.nodeID
	}
	return ""
}

// value is the tag's value for a request; false when it has none (a
// metadata tag whose value is absent).
func (t *Tag) value(in *FinishInput) (string, bool) {
	r, md := in.Req, in.Metadata
	switch t.Kind {
	case TagFormat:
		e := accesslog.Entry{Info: in.Info, Conn: in.Conn, Req: r, RespHeader: in.RespHeader, End: in.End}
		return string(t.Format.Append(nil, &e)), true
	case TagHeader:
		if v := requestHeader(r, t.Header); v != "" {
			return v, true
		}
		return t.Value, t.Value != ""
	case TagMetadata:
		var cur any = map[string]any(md[t.Filter])
		if md[t.Filter] == nil {
			return "", false
		}
		for _, k := range t.Path {
			m, ok := cur.(map[string]any)
			if !ok {
				return "", false
			}
			if cur, ok = m[k]; !ok {
				return "", false
			}
		}
		if s, ok := cur.(string); ok {
			return s, true
		}
		return fmt.Sprint(cur), true
	}
	return t.Value, true
}

// requestHeader is a request header as Envoy's header map has it: the
// HTTP/2 pseudo-headers :authority, :path, :method and :scheme are the
// request's (Envoy keeps HTTP/1.1's Host as :authority, so "host" itself
// is absent, as here).
func requestHeader(r *http.Request, name string) string {
	switch strings.ToLower(name) {
	case ":authority":
		return r.Host
	case ":path":
		return r.URL.RequestURI()
	case ":method":
		return r.Method
	case ":scheme":
		if r.TLS != nil {
			return "https"
		}
		return "http"
	}
	return r.Header.Get(name)
}

// requestURL is Envoy's http.url tag: scheme (x-forwarded-proto), host
// and path.
func requestURL(r *http.Request) string {
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

func truncate(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
