package xdsgen_test

import (
	"strings"
	"testing"

	tracecfg "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// tracingServices are a zipkin collector Service in istio-system and an
// app the sidecar serves.
const tracingServices = `
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: istio-system}
spec:
  selector: {app: zipkin}
  ports: [{name: http-query, port: 9411}]
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  selector: {app: productpage}
  ports: [{name: http, port: 9080}]
`

func meshYAML(t *testing.T, y string) *meshv1alpha1.MeshConfig {
	t.Helper()
	mc, err := meshconfig.Parse([]byte(y), "mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// hcmTracing is every connection manager's tracing block, by listener name.
func hcmTracing(t *testing.T, res *xdsgen.Resources) map[string]*hcm.HttpConnectionManager_Tracing {
	t.Helper()
	out := map[string]*hcm.HttpConnectionManager_Tracing{}
	for _, l := range res.Listeners {
		for _, fc := range l.GetFilterChains() {
			if len(fc.Filters) == 0 || fc.Filters[0].Name != xdsgen.HTTPConnectionManagerFilter {
				continue
			}
			out[l.Name] = managerOf(t, fc).GetTracing()
		}
	}
	return out
}

func tagsOf(tags []*tracingv3.CustomTag) map[string]string {
	out := map[string]string{}
	for _, tg := range tags {
		switch v := tg.Type.(type) {
		case *tracingv3.CustomTag_Literal_:
			out[tg.Tag] = "literal:" + v.Literal.Value
		case *tracingv3.CustomTag_RequestHeader:
			out[tg.Tag] = "header:" + v.RequestHeader.Name + "/" + v.RequestHeader.DefaultValue
		case *tracingv3.CustomTag_Environment_:
			out[tg.Tag] = "env:" + v.Environment.Name + "/" + v.Environment.DefaultValue
		case *tracingv3.CustomTag_Metadata_:
			out[tg.Tag] = "metadata:" + v.Metadata.MetadataKey.Key
		}
	}
	return out
}

// TestLegacyTracingZipkinAddress: MeshConfig's defaultConfig.tracing (the
// conformance case tracing-mesh-config-sampling) puts the bootstrap's
// zipkin tracer in every connection manager, its collector the outbound
// cluster of the address's service, with the sampling and custom tags.
func TestLegacyTracingZipkinAddress(t *testing.T) {
	mesh := meshYAML(t, `
enableTracing: true
defaultConfig:
  tracing:
    sampling: 10
    custom_tags:
      my_tag_header:
        header:
          name: host
    zipkin:
      address: zipkin.istio-system:9411
`)
	p := sidecar("productpage-v1", map[string]string{"app": "productpage", "version": "v1"})
	res := generateYAML(t, tracingServices, p, mesh)
	if len(res.Conflicts) > 0 {
		t.Fatalf("conflicts: %v", res.Conflicts)
	}
	all := hcmTracing(t, res)
	if len(all) < 2 {
		t.Fatalf("tracing blocks %v, want the outbound and inbound listeners'", all)
	}
	for name, tr := range all {
		if tr.GetProvider().GetName() != xdsgen.ZipkinTracer {
			t.Fatalf("%s: provider %v", name, tr.GetProvider())
		}
		var zc tracecfg.ZipkinConfig
		if err := tr.GetProvider().GetTypedConfig().UnmarshalTo(&zc); err != nil {
			t.Fatal(err)
		}
		if zc.CollectorCluster != "outbound|9411||zipkin.istio-system.svc.cluster.local" || zc.CollectorEndpoint != "/api/v2/spans" ||
			zc.CollectorEndpointVersion != tracecfg.ZipkinConfig_HTTP_JSON || !zc.TraceId_128Bit || zc.GetSharedSpanContext().GetValue() ||
			zc.CollectorHostname != "zipkin.istio-system.svc.cluster.local" {
			t.Errorf("%s: zipkin config %v", name, &zc)
		}
		if tr.GetRandomSampling().GetValue() != 10 || tr.GetClientSampling().GetValue() != 100 || tr.GetOverallSampling().GetValue() != 100 {
			t.Errorf("%s: sampling %v %v %v", name, tr.GetRandomSampling(), tr.GetClientSampling(), tr.GetOverallSampling())
		}
		if tr.GetSpawnUpstreamSpan() != nil {
			t.Errorf("%s: a sidecar gets no spawn_upstream_span", name)
		}
		tags := tagsOf(tr.GetCustomTags())
		want := map[string]string{
			"my_tag_header": "header:host/", "istio.canonical_service": "literal:productpage",
			"istio.canonical_revision": "literal:v1", "istio.namespace": "literal:default",
			"istio.mesh_id": "literal:cluster.local", "istio.cluster_id": "literal:Kubernetes",
			"istio.authorization.dry_run.allow_policy.name": "metadata:envoy.filters.http.rbac",
		}
		for k, v := range want {
			if tags[k] != v {
				t.Errorf("%s: tag %s = %q, want %q (all %v)", name, k, tags[k], v, tags)
			}
		}
	}
}

// TestLegacyTracingWithoutProvider: `tracing: {}` (the Telemetry-API
// task's mesh config) keeps the tracing block without a provider, at
// Istio's default 1% sampling; enableTracing false has no block at all.
func TestLegacyTracingWithoutProvider(t *testing.T) {
	p := sidecar("productpage-v1", map[string]string{"app": "productpage"})
	res := generateYAML(t, tracingServices, p, meshYAML(t, "enableTracing: true\ndefaultConfig:\n  tracing: {}\n"))
	for name, tr := range hcmTracing(t, res) {
		if tr == nil || tr.GetProvider() != nil || tr.GetRandomSampling().GetValue() != 1 {
			t.Errorf("%s: tracing %v, want no provider and 1%% sampling", name, tr)
		}
	}
	res = generateYAML(t, tracingServices, p, meshYAML(t, "enableTracing: false\n"))
	for name, tr := range hcmTracing(t, res) {
		if tr != nil {
			t.Errorf("%s: tracing %v with enableTracing false", name, tr)
		}
	}
}

// TestLegacyTracingUnknownService: a zipkin address naming no service is
// reported, and tracing is left off rather than pointed nowhere.
func TestLegacyTracingUnknownService(t *testing.T) {
	mesh := meshYAML(t, "defaultConfig:\n  tracing:\n    zipkin:\n      address: jaeger.tracing:9411\n")
	res := generateYAML(t, tracingServices, sidecar("productpage-v1", nil), mesh)
	if len(res.Conflicts) != 1 || !strings.Contains(res.Conflicts[0], "jaeger.tracing") {
		t.Fatalf("conflicts %v, want one naming the address", res.Conflicts)
	}
	for name, tr := range hcmTracing(t, res) {
		if tr != nil {
			t.Errorf("%s: tracing %v", name, tr)
		}
	}
}

// TestServiceCluster: Istio's bootstrap service cluster names the spans.
func TestServiceCluster(t *testing.T) {
	cases := []struct {
		p    model.Proxy
		want string
	}{
		{model.Proxy{Name: "productpage-v1", Namespace: "default", Labels: map[string]string{"app": "productpage"}}, "productpage.default"},
		{model.Proxy{Name: "gw-0", Namespace: "istio-system", Labels: map[string]string{"app": "istio-ingressgateway"}}, "istio-ingressgateway.istio-system"},
		{model.Proxy{Name: "db-0", Namespace: "data"}, "db-0.data"},
	}
	for _, c := range cases {
		if got := c.p.ServiceCluster(); got != c.want {
			t.Errorf("ServiceCluster(%v) = %q, want %q", c.p, got, c.want)
		}
	}
}
