// Package tracing is Envoy's HTTP tracing in the proxy: the connection
// manager's tracing block with a provider (envoy.tracers.zipkin,
// envoy.tracers.opentelemetry) compiled once per connection manager
// (config.go), one span per request continuing or starting a B3 or W3C
// trace context and passing it upstream (span.go), and spans exported in
// batches, off the request path, to the collector cluster named in xDS
// (exporter.go), through the proxy's own clusters.
package tracing

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcedetectors "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/resource_detectors/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// Tracer names as Envoy registers them.
const (
	Zipkin        = "envoy.tracers.zipkin"
	OpenTelemetry = "envoy.tracers.opentelemetry"
)

// defaultMaxPathTagLength is Envoy's default max_path_tag_length.
const defaultMaxPathTagLength = 256

// tracingFields are the connection manager tracing fields honoured.
var tracingFields = map[protoreflect.Name]bool{
	"client_sampling": true, "random_sampling": true, "overall_sampling": true, "max_path_tag_length": true,
	"custom_tags": true, "provider": true, "spawn_upstream_span": true, "no_context_propagation": true,
}

var zipkinFields = map[protoreflect.Name]bool{
	"collector_cluster": true, "collector_endpoint": true, "trace_id_128bit": true, "shared_span_context": true,
	"collector_endpoint_version": true, "collector_hostname": true, "trace_context_option": true, "collector_service": true,
}

var otelFields = map[protoreflect.Name]bool{
	"grpc_service": true, "http_service": true, "service_name": true, "resource_detectors": true,
}

var (
	grpcFields        = map[protoreflect.Name]bool{"envoy_grpc": true, "timeout": true, "initial_metadata": true}
	envoyGrpcFields   = map[protoreflect.Name]bool{"cluster_name": true, "authority": true}
	httpServiceFields = map[protoreflect.Name]bool{"http_uri": true, "request_headers_to_add": true}
)

// Config is a connection manager's tracing block with a provider,
// compiled: what every request of the chain does, and the exporter it
// reports to (Exporter, shared by every connection manager with the same).
type Config struct {
	// Server: the connection manager's span is a server span (inbound
	// listeners, and connection managers that spawn an upstream span);
	// otherwise a client span (sidecar outbound, Envoy's egress operation).
	Server bool
	// SpawnUpstream gives the upstream request its own client span, child
	// of the connection manager's (spawn_upstream_span).
	SpawnUpstream bool
	// Random, Client and Overall are the samplings in millionths.
	Random, Client, Overall uint32
	// MaxPathTag bounds the http.url tag.
	MaxPathTag int
	// NoPropagation: the trace context is not passed upstream.
	NoPropagation bool
	// B3 and W3C are the context formats read from requests and written
	// upstream: B3 for zipkin (and W3C too with
	// USE_B3_WITH_W3C_PROPAGATION), W3C for opentelemetry.
	B3, W3C bool
	// Tags are the custom_tags, in order.
	Tags []Tag
	// Exporter is where spans go.
	Exporter ExporterSpec
	// x is the proxy's pipeline for Exporter, found on first use; failed
	// is set when it could not be made.
	x      atomic.Pointer[Exporter]
	failed atomic.Bool
	// kind is the span kind option, made once.
	kind trace.SpanStartOption
}

// ExporterSpec is one collector as xDS names it. Equal specs share one
// exporter and batch processor in the proxy (Env).
type ExporterSpec struct {
	// Kind is Zipkin or OpenTelemetry.
	Kind string
	// Cluster is the collector's cluster, resolved when spans are sent.
	Cluster string
	// Host is the collector's authority; Path the zipkin or OTLP/HTTP path.
	Host, Path string
	// GRPC: OTLP over gRPC (opentelemetry grpc_service).
	GRPC bool
	// ServiceName names the proxy in its spans ("" : the proxy's own
	// service cluster, as Envoy's zipkin tracer uses local_info).
	ServiceName string
	// TraceID64: 64-bit trace ids (zipkin trace_id_128bit false).
	TraceID64 bool
	// Timeout bounds one export (0: the exporter's default).
	Timeout time.Duration
	// Headers are added to every export request (a string of
	// "k\x00v\x00" pairs so the spec stays comparable).
	Headers string
	// EnvResource reads OTEL_RESOURCE_ATTRIBUTES (the environment
	// resource detector).
	EnvResource bool
}

// TagKind is how a custom tag gets its value.
type TagKind uint8

const (
	TagLiteral TagKind = iota
	TagHeader
	TagMetadata
	// TagFormat is a `value` tag: an Envoy format string rendered when
	// the request completes.
	TagFormat
)

// Tag is one compiled custom tag.
type Tag struct {
	Name string
	Kind TagKind
	// Value is the literal (environment tags are read at compile time, as
	// Envoy does), or the default of a header tag.
	Value string
	// Header is a request header's canonical name.
	Header string
	// Filter and Path locate a request metadata value.
	Filter string
	Path   []string
	// Format is a value tag's compiled format string.
	Format *accesslog.Text
}

// Compile compiles a connection manager's tracing block. It returns nil
// for a block without a provider (the decorator is all it does, in the
// connection manager). dir is the listener's traffic_direction.
func Compile(t *hcm.HttpConnectionManager_Tracing, outbound bool) (*Config, error) {
	if t == nil || t.GetProvider() == nil {
		return nil, nil
	}
	if bad := xdsfields.Unsupported(t, tracingFields); len(bad) > 0 {
		return nil, fmt.Errorf("tracing: %s: not supported", strings.Join(bad, ", "))
	}
	c := &Config{
		SpawnUpstream: t.GetSpawnUpstreamSpan().GetValue(),
		Random:        percent(t.GetRandomSampling().GetValue(), t.RandomSampling != nil),
		Client:        percent(t.GetClientSampling().GetValue(), t.ClientSampling != nil),
		Overall:       percent(t.GetOverallSampling().GetValue(), t.OverallSampling != nil),
		MaxPathTag:    defaultMaxPathTagLength,
		NoPropagation: t.NoContextPropagation,
	}
	c.Server = !outbound || c.SpawnUpstream
	c.kind = trace.WithSpanKind(trace.SpanKindClient)
	if c.Server {
		c.kind = trace.WithSpanKind(trace.SpanKindServer)
	}
	if v := t.GetMaxPathTagLength(); v != nil {
		c.MaxPathTag = int(v.Value)
	}
	for i, ct := range t.CustomTags {
		tag, err := compileTag(ct)
		if err != nil {
			return nil, fmt.Errorf("tracing: custom_tags[%d] (%s): %w", i, ct.GetTag(), err)
		}
		c.Tags = append(c.Tags, tag)
	}
	p := t.GetProvider()
	var err error
	switch p.GetName() {
	case Zipkin:
		var zc tracecfg.ZipkinConfig
		if err = p.GetTypedConfig().UnmarshalTo(&zc); err == nil {
			err = c.zipkin(&zc)
		}
	case OpenTelemetry:
		var oc tracecfg.OpenTelemetryConfig
		if err = p.GetTypedConfig().UnmarshalTo(&oc); err == nil {
			err = c.otel(&oc)
		}
	default:
		err = fmt.Errorf("not supported (sluice reports to %s and %s)", Zipkin, OpenTelemetry)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: provider %q: %w", p.GetName(), err)
	}
	return c, nil
}

// percent is a sampling percentage in millionths; an absent one is 100%
// (Envoy's default for all three).
func percent(v float64, set bool) uint32 {
	if !set {
		return 1_000_000
	}
	return uint32(min(max(v, 0), 100) * 10_000)
}

func compileTag(ct *tracingv3.CustomTag) (Tag, error) {
	t := Tag{Name: ct.GetTag()}
	switch v := ct.GetType().(type) {
	case *tracingv3.CustomTag_Literal_:
		t.Value = v.Literal.GetValue()
	case *tracingv3.CustomTag_Environment_:
		t.Value = os.Getenv(v.Environment.GetName())
		if t.Value == "" {
			t.Value = v.Environment.GetDefaultValue()
		}
	case *tracingv3.CustomTag_RequestHeader:
		t.Kind, t.Header, t.Value = TagHeader, v.RequestHeader.GetName(), v.RequestHeader.GetDefaultValue()
		if !strings.HasPrefix(t.Header, ":") {
			// Canonical once here, so reading it per span allocates
			// nothing (Header.Get would canonicalise a lower-case name
			// into a new string every time).
			t.Header = http.CanonicalHeaderKey(t.Header)
		}
	case *tracingv3.CustomTag_Metadata_:
		md := v.Metadata
		if md.GetKind().GetRequest() == nil {
			return t, fmt.Errorf("metadata kind %v: only request metadata is supported", md.GetKind())
		}
		if md.GetDefaultValue() != "" {
			return t, fmt.Errorf("metadata default_value: not supported")
		}
		t.Kind, t.Filter = TagMetadata, md.GetMetadataKey().GetKey()
		for _, seg := range md.GetMetadataKey().GetPath() {
			k, ok := seg.GetSegment().(*metadatav3.MetadataKey_PathSegment_Key)
			if !ok {
				return t, fmt.Errorf("metadata path segment %v: not supported", seg)
			}
			t.Path = append(t.Path, k.Key)
		}
	case *tracingv3.CustomTag_Value:
		f, err := accesslog.CompileText(v.Value)
		if err != nil {
			return t, fmt.Errorf("value %q: %w", v.Value, err)
		}
		t.Kind, t.Format = TagFormat, f
	default:
		return t, fmt.Errorf("tag type %T: not supported", v)
	}
	return t, nil
}

// zipkin is Envoy's ZipkinConfig: the legacy collector fields or
// collector_service; v2 JSON only.
func (c *Config) zipkin(zc *tracecfg.ZipkinConfig) error {
	if bad := xdsfields.Unsupported(zc, zipkinFields); len(bad) > 0 {
		return fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
	}
	if zc.CollectorEndpointVersion != tracecfg.ZipkinConfig_HTTP_JSON {
		return fmt.Errorf("collector_endpoint_version %v: only HTTP_JSON is supported", zc.CollectorEndpointVersion)
	}
	if zc.GetSharedSpanContext().GetValue() {
		return fmt.Errorf("shared_span_context true: not supported")
	}
	c.B3 = true
	c.W3C = zc.TraceContextOption == tracecfg.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
	e := &c.Exporter
	e.Kind, e.TraceID64 = Zipkin, !zc.TraceId_128Bit
	if s := zc.GetCollectorService(); s != nil {
		if zc.CollectorCluster != "" || zc.CollectorEndpoint != "" {
			return fmt.Errorf("collector_service and collector_cluster/collector_endpoint both set")
		}
		return e.httpService(s, true)
	}
	if zc.CollectorCluster == "" || zc.CollectorEndpoint == "" {
		return fmt.Errorf("collector_cluster and collector_endpoint are required without collector_service")
	}
	e.Cluster, e.Path, e.Host = zc.CollectorCluster, zc.CollectorEndpoint, zc.CollectorHostname
	if e.Host == "" {
		e.Host = zc.CollectorCluster // Envoy's default Host header
	}
	if u, err := url.Parse("http://" + e.Host + e.Path); err != nil || u.Host != e.Host || !strings.HasPrefix(e.Path, "/") {
		return fmt.Errorf("collector_hostname %q with collector_endpoint %q is not a URL", e.Host, e.Path)
	}
	return nil
}

// otel is Envoy's OpenTelemetryConfig: OTLP over gRPC (EnvoyGrpc) or
// HTTP to a cluster.
func (c *Config) otel(oc *tracecfg.OpenTelemetryConfig) error {
	if bad := xdsfields.Unsupported(oc, otelFields); len(bad) > 0 {
		return fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
	}
	c.W3C = true
	e := &c.Exporter
	e.Kind, e.ServiceName = OpenTelemetry, oc.ServiceName
	if e.ServiceName == "" {
		e.ServiceName = "unknown_service:envoy" // Envoy's default
	}
	for _, rd := range oc.ResourceDetectors {
		if rd.GetTypedConfig().MessageIs(&resourcedetectors.EnvironmentResourceDetectorConfig{}) {
			e.EnvResource = true
			continue
		}
		return fmt.Errorf("resource_detectors %q: not supported (environment only)", rd.GetName())
	}
	switch {
	case oc.GetGrpcService() != nil && oc.GetHttpService() != nil:
		return fmt.Errorf("grpc_service and http_service both set")
	case oc.GetHttpService() != nil:
		return e.httpService(oc.GetHttpService(), false)
	case oc.GetGrpcService() != nil:
		return e.grpcService(oc.GetGrpcService())
	}
	return fmt.Errorf("one of grpc_service, http_service is required")
}

// httpService reads an HttpService: uri (with or without a scheme; its
// host is the authority, its path the endpoint), the cluster, timeout and
// headers.
func (e *ExporterSpec) httpService(s *core.HttpService, zipkinDefault bool) error {
	if bad := xdsfields.Unsupported(s, httpServiceFields); len(bad) > 0 {
		return fmt.Errorf("http_service: %s: not supported", strings.Join(bad, ", "))
	}
	u := s.GetHttpUri()
	if u.GetCluster() == "" {
		return fmt.Errorf("http_service.http_uri: a cluster is required")
	}
	raw := u.GetUri()
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	parsed, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("http_service.http_uri.uri %q: %w", u.GetUri(), err)
	}
	if parsed.Scheme != "http" {
		return fmt.Errorf("http_service.http_uri.uri %q: only http is supported", u.GetUri())
	}
	e.Cluster, e.Host, e.Path = u.GetCluster(), parsed.Host, parsed.EscapedPath()
	if e.Path == "" && zipkinDefault {
		e.Path = "/api/v2/spans"
	}
	e.Timeout = u.GetTimeout().AsDuration()
	var h strings.Builder
	for i, hv := range s.RequestHeadersToAdd {
		if hv.GetHeader().GetRawValue() != nil || hv.GetKeepEmptyValue() {
			return fmt.Errorf("http_service.request_headers_to_add[%d]: only key and value are supported", i)
		}
		h.WriteString(hv.GetHeader().GetKey() + "\x00" + hv.GetHeader().GetValue() + "\x00")
	}
	e.Headers = h.String()
	return nil
}

// grpcService reads an EnvoyGrpc service: cluster, authority, timeout and
// initial metadata.
func (e *ExporterSpec) grpcService(s *core.GrpcService) error {
	if bad := xdsfields.Unsupported(s, grpcFields); len(bad) > 0 {
		return fmt.Errorf("grpc_service: %s: not supported", strings.Join(bad, ", "))
	}
	eg := s.GetEnvoyGrpc()
	if eg == nil {
		return fmt.Errorf("grpc_service: envoy_grpc is required")
	}
	if bad := xdsfields.Unsupported(eg, envoyGrpcFields); len(bad) > 0 {
		return fmt.Errorf("grpc_service.envoy_grpc: %s: not supported", strings.Join(bad, ", "))
	}
	e.GRPC, e.Cluster, e.Host = true, eg.GetClusterName(), eg.GetAuthority()
	if e.Host == "" {
		e.Host = eg.GetClusterName()
	}
	e.Timeout = s.GetTimeout().AsDuration()
	var h strings.Builder
	for _, hv := range s.InitialMetadata {
		if hv.GetRawValue() != nil {
			return fmt.Errorf("grpc_service.initial_metadata %q: raw_value is not supported", hv.GetKey())
		}
		h.WriteString(hv.GetKey() + "\x00" + hv.GetValue() + "\x00")
	}
	e.Headers = h.String()
	return nil
}

// headerMap is Headers as a map.
func (e *ExporterSpec) headerMap() map[string]string {
	if e.Headers == "" {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(e.Headers, "\x00"), "\x00")
	m := make(map[string]string, len(parts)/2)
	for i := 0; i+1 < len(parts); i += 2 {
		m[parts[i]] = parts[i+1]
	}
	return m
}
