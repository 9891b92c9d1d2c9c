package xdsgen_test

import (
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// BenchmarkGenerateWithPeerAuthentication: one sidecar's config in a mesh
// of 100 services of 5 sidecar workloads each, with a namespace policy and
// a workload policy per service (the per-endpoint mtlsChecker's cost).
func BenchmarkGenerateWithPeerAuthentication(b *testing.B) {
	var sb strings.Builder
	for s := 0; s < 100; s++ {
		ns := fmt.Sprintf("ns%d", s%10)
		fmt.Fprintf(&sb, "apiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: %s}\nspec: {selector: {app: svc%d}, ports: [{name: http, port: 80, targetPort: 8080}]}\n---\n", s, ns, s)
		fmt.Fprintf(&sb, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: svc%d, namespace: %s}\nspec: {selector: {matchLabels: {app: svc%d}}, mtls: {mode: STRICT}, portLevelMtls: {\"8080\": {mode: PERMISSIVE}}}\n---\n", s, ns, s)
		for w := 0; w < 5; w++ {
			fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-%d, namespace: %s}\nspec: {address: 10.%d.%d.1, labels: {app: svc%d, security.istio.io/tlsMode: istio}, ports: {http: 8080}}\n---\n", s, w, ns, s, w, s)
		}
	}
	for n := 0; n < 10; n++ {
		fmt.Fprintf(&sb, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: ns%d}\nspec: {mtls: {mode: STRICT}}\n---\n", n)
	}
	dec := config.Decode([]byte(sb.String()), config.DecodeOptions{File: "bench.yaml"})
	if len(dec.Errors) > 0 {
		b.Fatal(dec.Errors)
	}
	pc := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: dec.Resources})
	p := sidecarFor("ns0", map[string]string{"app": "svc0"})
	p.Inbound = []model.InboundPort{{Address: "10.0.0.1:8080", App: "127.0.0.1:9080"}}
	p.ID = p.NodeID()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := xdsgen.Generate(pc, &p); err != nil {
			b.Fatal(err)
		}
	}
}
