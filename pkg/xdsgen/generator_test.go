package xdsgen_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenCase is one YAML-in / xDS-out case: testdata/<name>.yaml holds the
// config, testdata/<name>.golden.json the expected generated resources.
type goldenCase struct {
	name  string
	proxy model.Proxy
	mesh  *meshv1alpha1.MeshConfig
}

func sidecar(name string, labels map[string]string) model.Proxy {
	return model.Proxy{Type: model.Sidecar, Name: name, Namespace: "default", Labels: labels, IPs: []string{"127.0.0.1"},
		OutboundAddress: "127.0.0.1:15001", Inbound: []model.InboundPort{{Address: "127.0.0.1:15006", App: "127.0.0.1:8080"}}}
}

func withLocality(p model.Proxy, locality string) model.Proxy {
	p.Locality = locality
	return p
}

func TestGenerateGolden(t *testing.T) {
	registryOnly := &meshv1alpha1.MeshConfig{OutboundTrafficPolicy: &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{
		Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}}
	cases := []goldenCase{
		{name: "canary", proxy: sidecar("client", map[string]string{"app": "client"})},
		{name: "matches", proxy: sidecar("client", map[string]string{"app": "client", "team": "beta"})},
		{name: "actions", proxy: sidecar("client", map[string]string{"app": "client"})},
		{name: "cors", proxy: sidecar("client", nil)},
		{name: "delegate", proxy: sidecar("client", nil)},
		{name: "sidecar", proxy: sidecar("client", map[string]string{"app": "client"})},
		{name: "serviceentry", proxy: sidecar("client", nil), mesh: registryOnly},
		// Tracing on (Istio's default mesh config): the connection
		// managers get a tracing block.
		{name: "egress", proxy: sidecar("client", nil), mesh: &meshv1alpha1.MeshConfig{EnableTracing: true,
			OutboundTrafficPolicy: registryOnly.OutboundTrafficPolicy}},
		{name: "resilience", proxy: sidecar("client", nil), mesh: &meshv1alpha1.MeshConfig{
			DefaultHttpRetryPolicy: &networkingv1alpha3.HTTPRetry{Attempts: 4, RetryOn: "5xx"},
			DefaultConfig: &meshv1alpha1.ProxyConfig{ProxyHeaders: &meshv1alpha1.ProxyConfig_ProxyHeaders{
				AttemptCount: &meshv1alpha1.ProxyConfig_ProxyHeaders_AttemptCount{Disabled: wrapperspb.Bool(true)}}}}},
		{name: "trafficpolicy", proxy: withLocality(sidecar("client", map[string]string{"app": "client", "tier": "gold"}), "us-east/zone-a/rack-1")},
		{name: "gateway", proxy: model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
			Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}},
		{name: "gatewayapi", proxy: model.Proxy{Type: model.Router, Name: "web-gateway", Namespace: "infra",
			Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}, IPs: []string{"127.0.0.1"}, PortOffset: 8000}},
		{name: "gatewayapi-mesh", proxy: sidecar("client", nil)},
		// Kubernetes: endpoints from EndpointSlices, labels and identity
		// from Pods, locality from Nodes (pkg/registry kube.go).
		{name: "kube", proxy: withLocality(sidecar("client", nil), "eu/eu-1/rack7")},
		{name: "sidecar-listeners", proxy: model.Proxy{Type: model.Sidecar, Name: "db-0", Namespace: "default",
			Labels: map[string]string{"app": "db"}, IPs: []string{"127.0.0.1"}, OutboundAddress: "127.0.0.1:15001",
			Inbound: []model.InboundPort{{Address: "127.0.0.1:20001", App: "127.0.0.1:30001"}, {Address: "127.0.0.1:20002", App: "127.0.0.1:30002"}}}},
		// Capture (INTERCEPTION_MODE REDIRECT): Istio's virtualOutbound,
		// 0.0.0.0_P / VIP_P listeners not bound, virtualInbound.
		{name: "capture", proxy: model.Proxy{Type: model.Sidecar, Name: "client-1", Namespace: "default",
			Labels: map[string]string{"app": "client"}, IPs: []string{"10.1.0.5"}, InterceptionMode: model.InterceptionRedirect}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := generate(t, filepath.Join("testdata", tc.name+".yaml"), tc.proxy, tc.mesh)
			got := render(t, res)
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("generated config differs from %s (run `go test ./pkg/xdsgen -update` and review the diff):\n%s", path, firstDiff(string(want), string(got)))
			}
		})
	}
}

// generate decodes and validates a YAML file, then generates for proxy and
// checks what came out is valid, consistent Envoy config.
func generate(t *testing.T, file string, proxy model.Proxy, mesh *meshv1alpha1.MeshConfig) *xdsgen.Resources {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := config.Decode(data, config.DecodeOptions{File: file})
	if len(dec.Errors) > 0 {
		t.Fatalf("decode: %v", dec.Errors)
	}
	for _, r := range dec.Resources {
		if errs := config.Validate(r); len(errs) > 0 {
			t.Fatalf("validate: %v", errs)
		}
	}
	if mesh == nil {
		mesh = &meshv1alpha1.MeshConfig{}
	}
	// Metrics as an installed mesh has them (the golden files show the
	// stats filter).
	mesh = meshconfig.WithTelemetryDefaults(proto.Clone(mesh).(*meshv1alpha1.MeshConfig))
	pc := model.NewPushContext(model.PushOptions{Version: "1", Mesh: mesh, Resources: dec.Resources})
	p := proxy
	p.ID = p.NodeID()
	res, err := xdsgen.Generate(pc, &p)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	if err := xdsgen.Validate(res); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	snap, err := xdsserver.NewSnapshot(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("snapshot not consistent (an EDS or RDS name nothing refers to, or a reference to a missing one): %v", err)
	}
	return res
}

// render prints resources as stable, indented JSON (protojson randomises
// its whitespace, so it is re-indented through encoding/json).
func render(t *testing.T, res *xdsgen.Resources) []byte {
	t.Helper()
	out := map[string][]any{}
	add := func(kind string, m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		out[kind] = append(out[kind], v)
	}
	for _, l := range res.Listeners {
		add("listeners", l)
	}
	for _, r := range res.Routes {
		add("routes", r)
	}
	for _, c := range res.Clusters {
		add("clusters", c)
	}
	for _, e := range res.Endpoints {
		add("endpoints", e)
	}
	if len(res.Conflicts) > 0 {
		for _, c := range res.Conflicts {
			out["conflicts"] = append(out["conflicts"], c)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
