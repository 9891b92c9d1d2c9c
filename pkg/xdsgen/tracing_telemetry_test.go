package xdsgen

import (
	"testing"

	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	tpb "istio.io/api/telemetry/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
)

// The Telemetry path of the tracing generator (tracingFrom), fed the
// resolved TracingConfig the Telemetry resolution hands it.

const collectorServices = `
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec:
  selector: {app: zipkin}
  ports: [{name: http-query, port: 9411}]
---
apiVersion: v1
kind: Service
metadata: {name: opentelemetry-collector, namespace: observability}
spec:
  selector: {app: otel}
  ports: [{name: grpc, port: 4317}, {name: http, port: 4318}]
`

func telemetryGeneration(t *testing.T, p *model.Proxy) *generation {
	t.Helper()
	dec := config.Decode([]byte(collectorServices), config.DecodeOptions{File: "services.yaml"})
	if len(dec.Errors) > 0 {
		t.Fatal(dec.Errors)
	}
	pc := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.Default(), Resources: dec.Resources})
	return &generation{push: pc, proxy: p, out: &Resources{}}
}

func zipkinProvider() *meshv1alpha1.MeshConfig_ExtensionProvider {
	return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "zipkin", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin{
		Zipkin: &meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider{Service: "zipkin.istio-system.svc.cluster.local", Port: 9411},
	}}
}

func TestTelemetryTracingZipkin(t *testing.T) {
	hundred, ten := 100.0, 10.0
	tc := &model.TracingConfig{
		ClientSpec: model.TracingSpec{Provider: zipkinProvider(), RandomSamplingPercentage: &hundred, EnableIstioTags: true,
			CustomTags: map[string]*tpb.Tracing_CustomTag{
				"provider":   {Type: &tpb.Tracing_CustomTag_Literal{Literal: &tpb.Tracing_Literal{Value: "zipkin"}}},
				"cluster_id": {Type: &tpb.Tracing_CustomTag_Environment{Environment: &tpb.Tracing_Environment{Name: "ISTIO_META_CLUSTER_ID", DefaultValue: "Kubernetes"}}},
			}},
		ServerSpec: model.TracingSpec{Provider: zipkinProvider(), RandomSamplingPercentage: &ten, DisableContextPropagation: true},
	}
	gw := &model.Proxy{Type: model.Router, Name: "gw-0", Namespace: "istio-system", Labels: map[string]string{"app": "istio-ingressgateway"}}
	g := telemetryGeneration(t, gw)
	cl, err := g.tracingFrom(tc, model.ListenerClassGateway)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if cl.GetRandomSampling().GetValue() != 100 || !cl.GetSpawnUpstreamSpan().GetValue() || cl.NoContextPropagation {
		t.Errorf("gateway: %v", cl)
	}
	var zc tracecfg.ZipkinConfig
	if err := cl.GetProvider().GetTypedConfig().UnmarshalTo(&zc); err != nil {
		t.Fatal(err)
	}
	if zc.CollectorCluster != "outbound|9411||zipkin.istio-system.svc.cluster.local" {
		t.Errorf("collector %q", zc.CollectorCluster)
	}
	names := map[string]bool{}
	for _, tg := range cl.CustomTags {
		names[tg.Tag] = true
	}
	for _, n := range []string{"provider", "cluster_id", "istio.canonical_service", "istio.mesh_id"} {
		if !names[n] {
			t.Errorf("gateway: no tag %s in %v", n, cl.CustomTags)
		}
	}
	sc := &model.Proxy{Type: model.Sidecar, Name: "productpage-v1", Namespace: "default", Labels: map[string]string{"app": "productpage"}}
	g = telemetryGeneration(t, sc)
	in, err := g.tracingFrom(tc, model.ListenerClassSidecarInbound)
	if err != nil {
		t.Fatal(err)
	}
	if in.GetRandomSampling().GetValue() != 10 || !in.NoContextPropagation || in.GetSpawnUpstreamSpan() != nil {
		t.Errorf("inbound: %v", in)
	}
	for _, tg := range in.CustomTags {
		if tg.Tag == "istio.canonical_service" {
			t.Errorf("inbound: Istio tags without enableIstioTags: %v", in.CustomTags)
		}
	}
	tc.ServerSpec.Disabled = true
	if off, err := g.tracingFrom(tc, model.ListenerClassSidecarInbound); off != nil || err != nil {
		t.Errorf("disabled: %v, %v", off, err)
	}
}

func TestTelemetryTracingOpenTelemetry(t *testing.T) {
	sc := &model.Proxy{Type: model.Sidecar, Name: "curl-0", Namespace: "default", Labels: map[string]string{"app": "curl"}}
	otel := func(http bool) *meshv1alpha1.MeshConfig_ExtensionProvider {
		o := &meshv1alpha1.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{
			Service: "opentelemetry-collector.observability.svc.cluster.local", Port: 4317,
			ResourceDetectors: &meshv1alpha1.MeshConfig_ExtensionProvider_ResourceDetectors{
				Environment: &meshv1alpha1.MeshConfig_ExtensionProvider_ResourceDetectors_EnvironmentResourceDetector{},
			},
		}
		if http {
			o.Port = 4318
			o.Http = &meshv1alpha1.MeshConfig_ExtensionProvider_HttpService{Path: "/v1/traces"}
		}
		return &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "otel", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Opentelemetry{Opentelemetry: o}}
	}
	for _, http := range []bool{false, true} {
		g := telemetryGeneration(t, sc)
		tr, err := g.tracingFrom(&model.TracingConfig{ClientSpec: model.TracingSpec{Provider: otel(http)}}, model.ListenerClassSidecarOutbound)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.ValidateAll(); err != nil {
			t.Fatal(err)
		}
		if tr.GetProvider().GetName() != OpenTelemetryTracer || tr.GetRandomSampling().GetValue() != 1 {
			t.Errorf("http=%v: %v", http, tr)
		}
		var oc tracecfg.OpenTelemetryConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&oc); err != nil {
			t.Fatal(err)
		}
		if oc.ServiceName != "curl.default" || len(oc.ResourceDetectors) != 1 {
			t.Errorf("http=%v: %v", http, &oc)
		}
		if http {
			u := oc.GetHttpService().GetHttpUri()
			if u.GetCluster() != "outbound|4318||opentelemetry-collector.observability.svc.cluster.local" ||
				u.GetUri() != "opentelemetry-collector.observability.svc.cluster.local/v1/traces" {
				t.Errorf("http service %v", u)
			}
		} else if eg := oc.GetGrpcService().GetEnvoyGrpc(); eg.GetClusterName() != "outbound|4317||opentelemetry-collector.observability.svc.cluster.local" ||
			eg.GetAuthority() != "opentelemetry-collector.observability.svc.cluster.local" {
			t.Errorf("grpc service %v", eg)
		}
	}
	// A provider kind sluice cannot report to is refused by name.
	g := telemetryGeneration(t, sc)
	sky := &meshv1alpha1.MeshConfig_ExtensionProvider{Name: "sky", Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Skywalking{
		Skywalking: &meshv1alpha1.MeshConfig_ExtensionProvider_SkyWalkingTracingProvider{Service: "x", Port: 1},
	}}
	if _, err := g.tracingFrom(&model.TracingConfig{ClientSpec: model.TracingSpec{Provider: sky}}, model.ListenerClassSidecarOutbound); err == nil {
		t.Error("skywalking accepted")
	}
}
