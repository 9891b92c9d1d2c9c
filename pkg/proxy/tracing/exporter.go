package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// BatchTimeout is how long a span waits at most before its batch is sent
// (Envoy's zipkin and OpenTelemetry tracers flush every 5 s; sluice sooner).
const BatchTimeout = time.Second

// EnvOptions describe the proxy to its tracers.
type EnvOptions struct {
	// NodeID is the proxy's xDS node id (the node_id tag).
	NodeID string
	// ServiceCluster names the proxy in zipkin spans (Envoy's local_info
	// cluster: Istio's "<app>.<namespace>").
	ServiceCluster string
	// Clusters finds a cluster of the runtime in force by name; the
	// exporters reach their collector through it.
	Clusters func(name string) *upstream.Cluster
	// Logger reports export failures (nil: slog's default).
	Logger *slog.Logger
}

// Env is a proxy's tracing: one exporter and batch span processor per
// collector spec, made on first use and kept across config pushes.
type Env struct {
	opts EnvOptions
	mu   sync.Mutex
	exps map[ExporterSpec]*Exporter
	// stats are the tracers' counters by kind ("zipkin", "opentelemetry").
	stats map[string]*Stats
}

// Stats are a tracer kind's counters, as Envoy's tracing.<tracer>.*:
// spans sent, batches (reports) sent and failed, and batches not sent
// because the collector cluster was missing or had no host.
type Stats struct {
	SpansSent, ReportsSent, ReportsFailed, ReportsSkippedNoCluster atomic.Uint64
}

// NewEnv returns the tracing of one proxy.
func NewEnv(opts EnvOptions) *Env {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Env{opts: opts, exps: map[ExporterSpec]*Exporter{},
		stats: map[string]*Stats{Zipkin: {}, OpenTelemetry: {}}}
}

// statPrefix is Envoy's stats prefix of a tracer.
var statPrefix = map[string]string{Zipkin: "tracing.zipkin.", OpenTelemetry: "tracing.opentelemetry."}

// WriteText writes the counters of the tracers in use, as the admin's
// /stats lines.
func (e *Env) WriteText(w io.Writer) {
	for _, kind := range []string{OpenTelemetry, Zipkin} {
		st, p := e.stats[kind], statPrefix[kind]
		if st.ReportsSent.Load()+st.ReportsFailed.Load()+st.ReportsSkippedNoCluster.Load() == 0 {
			continue
		}
		fmt.Fprintf(w, "%sspans_sent: %d\n", p, st.SpansSent.Load())
		fmt.Fprintf(w, "%sreports_sent: %d\n", p, st.ReportsSent.Load())
		fmt.Fprintf(w, "%sreports_failed: %d\n", p, st.ReportsFailed.Load())
		fmt.Fprintf(w, "%sreports_skipped_no_cluster: %d\n", p, st.ReportsSkippedNoCluster.Load())
	}
}

// Stats are the counters of tracer kind (Zipkin, OpenTelemetry).
func (e *Env) Stats(kind string) *Stats { return e.stats[kind] }

// NodeID is the proxy's node id.
func (e *Env) NodeID() string { return e.opts.NodeID }

// Exporter is one collector's span pipeline.
type Exporter struct {
	nodeID string
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// Exporter returns the pipeline of spec, making it on first use.
func (e *Env) Exporter(spec ExporterSpec) (*Exporter, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.exps[spec]; x != nil {
		return x, nil
	}
	x, err := e.newExporter(spec)
	if err != nil {
		return nil, err
	}
	e.exps[spec] = x
	return x, nil
}

// Shutdown flushes and stops every exporter.
func (e *Env) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	exps := e.exps
	e.exps = map[ExporterSpec]*Exporter{}
	e.mu.Unlock()
	var errs []error
	for _, x := range exps {
		errs = append(errs, x.tp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// ForceFlush sends every span ended so far.
func (e *Env) ForceFlush(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, x := range e.exps {
		errs = append(errs, x.tp.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

func (e *Env) newExporter(spec ExporterSpec) (*Exporter, error) {
	x := &Exporter{nodeID: e.opts.NodeID}
	var exp sdktrace.SpanExporter
	var err error
	client := &http.Client{Transport: &http.Transport{DialContext: e.dialer(spec), MaxIdleConnsPerHost: 2}, Timeout: spec.Timeout}
	switch {
	case spec.Kind == Zipkin:
		opts := []zipkin.Option{zipkin.WithClient(client)}
		if h := spec.headerMap(); h != nil {
			opts = append(opts, zipkin.WithHeaders(h))
		}
		exp, err = zipkin.New("http://"+spec.Host+spec.Path, opts...)
	case spec.GRPC:
		exp, err = e.grpcExporter(spec)
	default:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(spec.Host), otlptracehttp.WithURLPath(spec.Path),
			otlptracehttp.WithInsecure(), otlptracehttp.WithHTTPClient(client)}
		if spec.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(spec.Timeout))
		}
		if h := spec.headerMap(); h != nil {
			opts = append(opts, otlptracehttp.WithHeaders(h))
		}
		exp, err = otlptracehttp.New(context.Background(), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter to %s: %w", spec.Cluster, err)
	}
	name := spec.ServiceName
	if name == "" {
		name = e.opts.ServiceCluster
	}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	if spec.EnvResource {
		if env, err := resource.New(context.Background(), resource.WithFromEnv()); err == nil {
			res, _ = resource.Merge(res, env)
		}
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(&countingExporter{SpanExporter: exp, log: e.opts.Logger, cluster: spec.Cluster, stats: e.stats[spec.Kind]},
			sdktrace.WithBatchTimeout(BatchTimeout)),
		sdktrace.WithResource(res), sdktrace.WithSampler(decisionSampler{}),
	}
	if spec.TraceID64 {
		opts = append(opts, sdktrace.WithIDGenerator(ids64{}))
	}
	x.tp = sdktrace.NewTracerProvider(opts...)
	x.tracer = x.tp.Tracer("sluice")
	return x, nil
}

// grpcExporter is OTLP over gRPC to the cluster, plaintext, with the
// authority of the xDS envoy_grpc.
func (e *Env) grpcExporter(spec ExporterSpec) (sdktrace.SpanExporter, error) {
	dial := e.dialer(spec)
	conn, err := grpc.NewClient("passthrough:///"+spec.Host,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(spec.Host),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, "tcp", spec.Host) }))
	if err != nil {
		return nil, err
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithGRPCConn(conn)}
	if spec.Timeout > 0 {
		opts = append(opts, otlptracegrpc.WithTimeout(spec.Timeout))
	}
	if h := spec.headerMap(); h != nil {
		opts = append(opts, otlptracegrpc.WithHeaders(h))
	}
	return otlptracegrpc.New(context.Background(), opts...)
}

// dialer connects to a host of cluster, picked by the cluster's load
// balancer in the runtime in force when the connection is made, as the
// cluster reaches its hosts (upstream.Transport.Dial: host overrides, the
// sidecar's source address, TLS/mTLS when the cluster originates it).
func (e *Env) dialer(spec ExporterSpec) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	cluster, st := spec.Cluster, e.stats[spec.Kind]
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var cl *upstream.Cluster
		if e.opts.Clusters != nil {
			cl = e.opts.Clusters(cluster)
		}
		if cl == nil {
			st.ReportsSkippedNoCluster.Add(1)
			return nil, fmt.Errorf("collector cluster %s: not in the proxy's config", cluster)
		}
		h := cl.Pick(nil)
		if h == nil {
			st.ReportsSkippedNoCluster.Add(1)
			return nil, fmt.Errorf("collector cluster %s: no healthy host", cluster)
		}
		if tr := cl.TransportFor(h); tr != nil {
			return tr.Dial(ctx, h.Address)
		}
		return d.DialContext(ctx, network, h.Address)
	}
}

// countingExporter counts and logs failed exports.
type countingExporter struct {
	sdktrace.SpanExporter
	log     *slog.Logger
	cluster string
	stats   *Stats
}

func (c *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		c.stats.ReportsSent.Add(1)
		c.stats.SpansSent.Add(uint64(len(spans)))
	} else {
		c.stats.ReportsFailed.Add(1)
		c.log.Warn("tracing: spans not sent", "cluster", c.cluster, "spans", len(spans), "error", strings.TrimSpace(err.Error()))
	}
	return err
}

// ids64 makes 64-bit trace ids (zipkin trace_id_128bit false): the high
// half is zero.
type ids64 struct{}

func (ids64) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	var t trace.TraceID
	binary.BigEndian.PutUint64(t[8:], nonZero())
	return t, spanID()
}

func (ids64) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return spanID() }

func spanID() trace.SpanID {
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], nonZero())
	return s
}

func nonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}
