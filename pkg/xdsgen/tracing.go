package xdsgen

import (
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resourcedetectors "github.com/envoyproxy/go-control-plane/envoy/extensions/tracers/opentelemetry/resource_detectors/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	tpb "istio.io/api/telemetry/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// The connection manager's tracing, a port of istiod's
// pilot/pkg/networking/core/tracing.go (configureTracingFromTelemetry and
// its helpers). Istio's legacy path (no Telemetry) leaves the provider to
// Envoy's bootstrap, built from defaultConfig.tracing by the agent
// (pkg/bootstrap/config.go getProxyConfigOptions, the "zipkin" cluster of
// tools/packaging/common/envoy_bootstrap.json); sluice has no bootstrap, so
// that provider is put in the connection manager, its collector cluster
// the outbound cluster of the zipkin address's service.

// Envoy's tracer names (istiod's envoyZipkin, envoyOpenTelemetry).
const (
	ZipkinTracer        = "envoy.tracers.zipkin"
	OpenTelemetryTracer = "envoy.tracers.opentelemetry"
	// ZipkinSpansPath is Envoy's v2 JSON collector endpoint, istiod's default.
	ZipkinSpansPath = "/api/v2/spans"
)

// defaultTraceSampling is PILOT_TRACE_SAMPLING's default (features.TraceSampling).
const defaultTraceSampling = 1.0

// defaultZipkinTimeout is what istiod gives a zipkin collector_service
// without a timeout ("Envoy requires a timeout to be set").
const defaultZipkinTimeout = 5 * time.Second

// RBAC shadow rules' dynamic metadata keys (istiod's authz model
// RBACShadowRulesAllowStatPrefix/DenyStatPrefix + EffectivePolicyID/EngineResult).
const (
	rbacShadowAllow = "istio_dry_run_allow_"
	rbacShadowDeny  = "istio_dry_run_deny_"
)

// tracingSet memoises a proxy's tracing per listener class: every
// listener of a class gets the same block, and a provider problem is
// reported once.
type tracingSet struct {
	done     [3]bool
	cfg      [3]*hcm.HttpConnectionManager_Tracing
	reported map[string]bool
}

// tracing is the connection manager tracing block of the proxy's
// listeners of class; nil when tracing is off for them.
func (g *generation) tracing(class model.ListenerClass) *hcm.HttpConnectionManager_Tracing {
	if g.tracingMemo == nil {
		g.tracingMemo = &tracingSet{}
	}
	if int(class) >= len(g.tracingMemo.done) {
		return nil
	}
	if !g.tracingMemo.done[class] {
		t, err := g.buildTracing(class)
		if msg := fmt.Sprint(err); err != nil && !g.tracingMemo.reported[msg] {
			if g.tracingMemo.reported == nil {
				g.tracingMemo.reported = map[string]bool{}
			}
			g.tracingMemo.reported[msg] = true
			g.out.Conflicts = append(g.out.Conflicts, msg+"; spans are not reported")
		}
		g.tracingMemo.done[class], g.tracingMemo.cfg[class] = true, t
	}
	return g.tracingMemo.cfg[class]
}

// buildTracing is istiod's configureTracingFromTelemetry. A provider that
// cannot be configured leaves tracing off for class (istiod logs and
// returns without tracing); the error says why.
func (g *generation) buildTracing(class model.ListenerClass) (*hcm.HttpConnectionManager_Tracing, error) {
	return g.tracingFrom(g.push.Tracing(g.proxy), class)
}

// tracingFrom is buildTracing from the proxy's resolved Telemetry tracing
// tc (nil: none applies).
func (g *generation) tracingFrom(tc *model.TracingConfig, class model.ListenerClass) (*hcm.HttpConnectionManager_Tracing, error) {
	mesh := g.push.Mesh
	proxyCfg := mesh.GetDefaultConfig()
	if tc == nil {
		if !mesh.GetEnableTracing() {
			return nil, nil
		}
		return g.legacyTracing(proxyCfg)
	}
	spec := &tc.ServerSpec
	if class == model.ListenerClassSidecarOutbound || class == model.ListenerClassGateway {
		spec = &tc.ClientSpec
	}
	if spec.Disabled {
		return nil, nil
	}
	t := &hcm.HttpConnectionManager_Tracing{}
	if spec.Provider != nil {
		var err error
		if t, err = g.providerTracing(spec.Provider); err != nil {
			return nil, fmt.Errorf("tracing provider %q: %w", spec.Provider.GetName(), err)
		}
	}
	sampling := proxyConfigSampling(proxyCfg)
	if spec.Provider.GetOpentelemetry().GetSampling() != nil {
		// A provider's own sampler decides; Envoy samples everything for it.
		sampling = 100
	} else if spec.RandomSamplingPercentage != nil {
		sampling = *spec.RandomSamplingPercentage
	}
	configureSampling(t, sampling)
	t.CustomTags = customTags(spec, proxyCfg, g.istioTags())
	if t.MaxPathTagLength == nil && proxyCfg.GetTracing().GetMaxPathTagLength() != 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(proxyCfg.GetTracing().GetMaxPathTagLength())
	}
	t.NoContextPropagation = spec.DisableContextPropagation
	return t, nil
}

// legacyTracing is istiod's MeshConfig fallback: sampling and custom tags
// from defaultConfig.tracing, plus the provider the agent's bootstrap
// would have made of it (zipkin only; `tracing: {}` has none, and the
// decorator operation is still passed on).
func (g *generation) legacyTracing(proxyCfg *meshv1alpha1.ProxyConfig) (*hcm.HttpConnectionManager_Tracing, error) {
	t := &hcm.HttpConnectionManager_Tracing{}
	tr := proxyCfg.GetTracing()
	switch tr.GetTracer().(type) {
	case nil:
	case *meshv1alpha1.Tracing_Zipkin_:
		if addr := tr.GetZipkin().GetAddress(); addr != "" {
			p, err := g.legacyZipkinProvider(addr)
			if err != nil {
				return nil, fmt.Errorf("meshConfig defaultConfig.tracing.zipkin.address %q: %w", addr, err)
			}
			if t, err = g.providerTracing(p); err != nil {
				return nil, fmt.Errorf("meshConfig defaultConfig.tracing.zipkin.address %q: %w", addr, err)
			}
		}
	default:
		return nil, fmt.Errorf("meshConfig defaultConfig.tracing: tracer %T is not supported (zipkin only; or use extensionProviders)", tr.GetTracer())
	}
	configureSampling(t, proxyConfigSampling(proxyCfg))
	t.CustomTags = customTags(nil, proxyCfg, g.istioTags())
	if tr.GetMaxPathTagLength() != 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(tr.GetMaxPathTagLength())
	}
	return t, nil
}

// legacyZipkinProvider turns a zipkin address (host:port, the host a
// service's short name "zipkin.istio-system" or its full name) into the
// zipkin provider it stands for.
func (g *generation) legacyZipkinProvider(addr string) (*meshv1alpha1.MeshConfig_ExtensionProvider, error) {
	host, portStr, ok := strings.Cut(addr, ":")
	port, err := strconv.ParseUint(portStr, 10, 32)
	if !ok || err != nil || port == 0 {
		return nil, fmt.Errorf("not host:port")
	}
	svc := host
	if name, ns, ok := strings.Cut(host, "."); ok && !strings.Contains(ns, ".") {
		svc = config.ServiceHostname(name, ns, "")
	}
	return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "zipkin", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin{
		Zipkin: &meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider{Service: svc, Port: uint32(port)},
	}}, nil
}

// providerTracing is istiod's configureFromProviderConfig for the
// providers sluice's proxy exports to (zipkin, opentelemetry).
func (g *generation) providerTracing(p *meshv1alpha1.MeshConfig_ExtensionProvider) (*hcm.HttpConnectionManager_Tracing, error) {
	t := &hcm.HttpConnectionManager_Tracing{}
	if g.proxy.Type == model.Router {
		// istiod: startChildSpan for routers (PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY).
		t.SpawnUpstreamSpan = wrapperspb.Bool(true)
	}
	var name string
	var cfg *anypb.Any
	var maxTag uint32
	var err error
	switch prov := p.GetProvider().(type) {
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin:
		name, maxTag = ZipkinTracer, prov.Zipkin.GetMaxTagLength()
		cfg, err = g.zipkinConfig(prov.Zipkin)
	case *meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry:
		name, maxTag = OpenTelemetryTracer, prov.Opentelemetry.GetMaxTagLength()
		cfg, err = g.otelConfig(prov.Opentelemetry)
	default:
		return nil, fmt.Errorf("provider kind %T: sluice reports spans to zipkin and opentelemetry providers only", prov)
	}
	if err != nil {
		return nil, err
	}
	t.Provider = &tracecfg.Tracing_Http{Name: name, ConfigType: &tracecfg.Tracing_Http_TypedConfig{TypedConfig: cfg}}
	if maxTag != 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(maxTag)
	}
	return t, nil
}

// lookupCluster is istiod's model.LookupCluster: the provider's service
// ("host" or "namespace/host") as an outbound cluster name.
func (g *generation) lookupCluster(service string, port uint32) (host, cluster string, err error) {
	if service == "" {
		return "", "", fmt.Errorf("service must not be empty")
	}
	ns, name, qualified := strings.Cut(service, "/")
	if !qualified {
		name = service
	}
	var found []string
	for _, svc := range g.push.ServicesForHost(name) {
		if qualified && svc.Namespace != ns {
			continue
		}
		found = append(found, svc.Namespace)
	}
	switch {
	case len(found) == 1 || (len(found) > 1 && qualified):
		return name, ClusterName("outbound", port, "", name), nil
	case len(found) > 1:
		sort.Strings(found)
		return "", "", fmt.Errorf("found %s in multiple namespaces %v, specify the namespace explicitly in the format of <Namespace>/<Hostname>", service, found)
	}
	return "", "", fmt.Errorf("could not find service %s in the service registry", service)
}

// zipkinConfig is istiod's zipkinConfig: Envoy's legacy collector fields,
// or collector_service when a timeout or headers are given.
func (g *generation) zipkinConfig(z *meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider) (*anypb.Any, error) {
	host, cluster, err := g.lookupCluster(z.GetService(), z.GetPort())
	if err != nil {
		return nil, err
	}
	path := z.GetPath()
	if path == "" {
		path = ZipkinSpansPath
	}
	zc := &tracecfg.ZipkinConfig{
		CollectorEndpointVersion: tracecfg.ZipkinConfig_HTTP_JSON,
		TraceId_128Bit:           !z.GetEnable_64BitTraceId(),
		SharedSpanContext:        wrapperspb.Bool(false),
	}
	if z.GetTraceContextOption() == meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider_USE_B3_WITH_W3C_PROPAGATION {
		zc.TraceContextOption = tracecfg.ZipkinConfig_USE_B3_WITH_W3C_PROPAGATION
	}
	if z.GetTimeout() != nil || len(z.GetHeaders()) > 0 {
		timeout := z.GetTimeout()
		if timeout == nil {
			timeout = durationpb.New(defaultZipkinTimeout)
		}
		zc.CollectorService = &core.HttpService{
			HttpUri: &core.HttpUri{
				Uri:              "http://" + host + path,
				HttpUpstreamType: &core.HttpUri_Cluster{Cluster: cluster},
				Timeout:          timeout,
			},
			RequestHeadersToAdd: httpHeaders(z.GetHeaders()),
		}
	} else {
		zc.CollectorCluster, zc.CollectorEndpoint, zc.CollectorHostname = cluster, path, host
	}
	return anypb.New(zc)
}

// otelConfig is istiod's otelConfig: OTLP over gRPC, or over HTTP when the
// provider has http; service_name is the proxy's service cluster.
func (g *generation) otelConfig(o *meshv1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider) (*anypb.Any, error) {
	host, cluster, err := g.lookupCluster(o.GetService(), o.GetPort())
	if err != nil {
		return nil, err
	}
	if o.GetSampling() != nil {
		return nil, fmt.Errorf("opentelemetry sampling (the Dynatrace sampler) is not supported")
	}
	if o.GetServiceAttributeEnrichment() == meshv1alpha1.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS {
		return nil, fmt.Errorf("opentelemetry serviceAttributeEnrichment OTEL_SEMANTIC_CONVENTIONS is not supported")
	}
	if rd := o.GetResourceDetectors(); rd.GetDynatrace() != nil {
		return nil, fmt.Errorf("opentelemetry resourceDetectors.dynatrace is not supported")
	}
	oc := &tracecfg.OpenTelemetryConfig{ServiceName: g.proxy.ServiceCluster()}
	if h := o.GetHttp(); h != nil {
		uri, err := url.JoinPath(host, h.GetPath())
		if err != nil {
			return nil, fmt.Errorf("otlp/http traces endpoint: %w", err)
		}
		oc.HttpService = &core.HttpService{
			HttpUri: &core.HttpUri{
				Uri: uri, HttpUpstreamType: &core.HttpUri_Cluster{Cluster: cluster}, Timeout: h.GetTimeout(),
			},
			RequestHeadersToAdd: httpHeaders(h.GetHeaders()),
		}
	} else {
		oc.GrpcService = &core.GrpcService{
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: host}},
			Timeout:         o.GetGrpc().GetTimeout(),
			InitialMetadata: headerValues(o.GetGrpc().GetInitialMetadata()),
		}
	}
	if o.GetResourceDetectors().GetEnvironment() != nil {
		res, err := anypb.New(&resourcedetectors.EnvironmentResourceDetectorConfig{})
		if err != nil {
			return nil, err
		}
		oc.ResourceDetectors = []*core.TypedExtensionConfig{{Name: EnvironmentResourceDetector, TypedConfig: res}}
	}
	return anypb.New(oc)
}

// EnvironmentResourceDetector is the resource detector istiod adds for
// resourceDetectors environment (xdsfilters.EnvironmentResourceDetector).
const EnvironmentResourceDetector = "envoy.tracers.opentelemetry.resource_detectors.environment"

// httpHeaders is istiod's buildHTTPHeaders.
func httpHeaders(hs []*meshv1alpha1.MeshConfig_ExtensionProvider_HttpHeader) []*core.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*core.HeaderValueOption, 0, len(hs))
	for _, hv := range headerValues(hs) {
		out = append(out, &core.HeaderValueOption{AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, Header: hv})
	}
	return out
}

// headerValues is istiod's buildInitialMetadata; an envName header takes
// the control plane's environment variable, as istiod's getHeaderValue.
func headerValues(hs []*meshv1alpha1.MeshConfig_ExtensionProvider_HttpHeader) []*core.HeaderValue {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*core.HeaderValue, 0, len(hs))
	for _, h := range hs {
		v := h.GetValue()
		if env := h.GetEnvName(); env != "" {
			v = os.Getenv(env)
		}
		out = append(out, &core.HeaderValue{Key: h.GetName(), Value: v})
	}
	return out
}

// configureSampling is istiod's: client and overall sampling 100%, random
// sampling the percentage.
func configureSampling(t *hcm.HttpConnectionManager_Tracing, percent float64) {
	t.ClientSampling = &typev3.Percent{Value: 100}
	t.OverallSampling = &typev3.Percent{Value: 100}
	t.RandomSampling = &typev3.Percent{Value: percent}
}

// proxyConfigSampling is istiod's proxyConfigSamplingValue.
func proxyConfigSampling(pc *meshv1alpha1.ProxyConfig) float64 {
	s := defaultTraceSampling
	if v := pc.GetTracing().GetSampling(); v != 0 {
		s = v
		if s > 100 {
			s = 1
		}
	}
	return s
}

// customTags is istiod's configureCustomTags: Istio's tags (when enabled),
// then the Telemetry's custom tags or, without any, defaultConfig's;
// sorted by name. spec nil is the legacy path.
func customTags(spec *model.TracingSpec, pc *meshv1alpha1.ProxyConfig, istio []*tracingv3.CustomTag) []*tracingv3.CustomTag {
	var tags []*tracingv3.CustomTag
	enable := spec != nil && spec.EnableIstioTags
	if spec == nil {
		enable = pc.GetTracing().GetEnableIstioTags() == nil || pc.GetTracing().GetEnableIstioTags().GetValue()
	}
	if enable {
		tags = append(tags, istio...)
		tags = append(tags, optionalPolicyTags()...)
	}
	if spec == nil || len(spec.CustomTags) == 0 {
		tags = append(tags, proxyConfigTags(pc.GetTracing().GetCustomTags())...)
	} else {
		tags = append(tags, telemetryTags(spec.CustomTags)...)
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].Tag < tags[j].Tag })
	return tags
}

// telemetryTags is istiod's buildCustomTagsFromProvider.
func telemetryTags(in map[string]*tpb.Tracing_CustomTag) []*tracingv3.CustomTag {
	var out []*tracingv3.CustomTag
	for name, ct := range in {
		t := &tracingv3.CustomTag{Tag: name}
		switch v := ct.GetType().(type) {
		case *tpb.Tracing_CustomTag_Literal:
			t.Type = literalTag(v.Literal.GetValue()).Type
		case *tpb.Tracing_CustomTag_Environment:
			t.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{
				Name: v.Environment.GetName(), DefaultValue: v.Environment.GetDefaultValue(),
			}}
		case *tpb.Tracing_CustomTag_Header:
			t.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{
				Name: v.Header.GetName(), DefaultValue: v.Header.GetDefaultValue(),
			}}
		case *tpb.Tracing_CustomTag_Formatter:
			t.Type = &tracingv3.CustomTag_Value{Value: v.Formatter.GetValue()}
		default:
			continue // a nil tag: istiod skips it
		}
		out = append(out, t)
	}
	return out
}

// proxyConfigTags is istiod's buildCustomTagsFromProxyConfig.
func proxyConfigTags(in map[string]*meshv1alpha1.Tracing_CustomTag) []*tracingv3.CustomTag {
	var out []*tracingv3.CustomTag
	for name, ct := range in {
		t := &tracingv3.CustomTag{Tag: name}
		switch v := ct.GetType().(type) {
		case *meshv1alpha1.Tracing_CustomTag_Literal:
			t.Type = literalTag(v.Literal.GetValue()).Type
		case *meshv1alpha1.Tracing_CustomTag_Environment:
			t.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{
				Name: v.Environment.GetName(), DefaultValue: v.Environment.GetDefaultValue(),
			}}
		case *meshv1alpha1.Tracing_CustomTag_Header:
			t.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{
				Name: v.Header.GetName(), DefaultValue: v.Header.GetDefaultValue(),
			}}
		default:
			continue
		}
		out = append(out, t)
	}
	return out
}

func literalTag(v string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: v}}}
}

// istioTags is istiod's buildServiceTags for this proxy.
func (g *generation) istioTags() []*tracingv3.CustomTag {
	p := g.proxy
	meshID := g.push.Mesh.GetDefaultConfig().GetMeshId()
	if meshID == "" {
		// The agent's MESH_ID defaults to the trust domain.
		meshID = g.push.Mesh.GetTrustDomain()
	}
	ns := p.Namespace
	if ns == "" {
		ns = "default"
	}
	tag := func(name, v string) *tracingv3.CustomTag {
		t := literalTag(v)
		t.Tag = name
		return t
	}
	svc, rev := CanonicalService(p)
	return []*tracingv3.CustomTag{
		tag("istio.canonical_revision", rev),
		tag("istio.canonical_service", svc),
		tag("istio.mesh_id", firstNonEmpty(meshID, "unknown")),
		tag("istio.namespace", ns),
		// Istio's default cluster ID (the injector's ISTIO_META_CLUSTER_ID).
		tag("istio.cluster_id", "Kubernetes"),
	}
}

// optionalPolicyTags are istiod's dry-run AuthorizationPolicy tags: the
// rbac filter's shadow metadata, absent when it wrote none.
func optionalPolicyTags() []*tracingv3.CustomTag {
	tag := func(name, key string) *tracingv3.CustomTag {
		return &tracingv3.CustomTag{Tag: name, Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{
			Kind: &metadatav3.MetadataKind{Kind: &metadatav3.MetadataKind_Request_{Request: &metadatav3.MetadataKind_Request{}}},
			MetadataKey: &metadatav3.MetadataKey{Key: "envoy.filters.http.rbac", Path: []*metadatav3.MetadataKey_PathSegment{
				{Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: key}},
			}},
		}}}
	}
	return []*tracingv3.CustomTag{
		tag("istio.authorization.dry_run.allow_policy.name", rbacShadowAllow+"shadow_effective_policy_id"),
		tag("istio.authorization.dry_run.allow_policy.result", rbacShadowAllow+"shadow_engine_result"),
		tag("istio.authorization.dry_run.deny_policy.name", rbacShadowDeny+"shadow_effective_policy_id"),
		tag("istio.authorization.dry_run.deny_policy.result", rbacShadowDeny+"shadow_engine_result"),
	}
}

// CanonicalService is a workload's canonical service and revision as
// Istio's injector labels them (service.istio.io/canonical-name, then
// app.kubernetes.io/name, app, the workload name; canonical-revision, then
// app.kubernetes.io/version, version, "latest").
func CanonicalService(p *model.Proxy) (service, revision string) {
	l := p.Labels
	return firstNonEmpty(l["service.istio.io/canonical-name"], l["app.kubernetes.io/name"], l["app"], p.Name, "unknown"),
		firstNonEmpty(l["service.istio.io/canonical-revision"], l["app.kubernetes.io/version"], l["version"], "latest")
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
