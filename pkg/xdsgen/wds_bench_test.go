package xdsgen_test

import (
	"fmt"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// BenchmarkBuildWDS: the workload API of a mesh of 100 services with 10
// WorkloadEntries each and a policy per service, built once per push.
func BenchmarkBuildWDS(b *testing.B) {
	var sb strings.Builder
	for s := range 100 {
		ns := fmt.Sprintf("ns%d", s%10)
		fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc%d, namespace: %s}\nspec: {hosts: [svc%d.example], addresses: [240.0.%d.1], resolution: STATIC, location: MESH_INTERNAL, ports: [{number: 80, name: http, protocol: HTTP}], workloadSelector: {labels: {app: svc%d}}}\n---\n", s, ns, s, s, s)
		fmt.Fprintf(&sb, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: svc%d, namespace: %s}\nspec: {selector: {matchLabels: {app: svc%d}}, rules: [{from: [{source: {namespaces: [%s]}}]}]}\n---\n", s, ns, s, ns)
		for w := range 10 {
			fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-%d, namespace: %s}\nspec: {address: 10.%d.%d.1, serviceAccount: svc%d, labels: {app: svc%d}, ports: {http: 8080}}\n---\n", s, w, ns, s, w, s, s)
		}
	}
	dec := config.Decode([]byte(sb.String()), config.DecodeOptions{File: "bench.yaml"})
	if len(dec.Errors) > 0 {
		b.Fatal(dec.Errors)
	}
	pc := model.NewPushContext(model.PushOptions{Version: "1", Mesh: &meshv1alpha1.MeshConfig{}, Resources: dec.Resources})
	b.ReportAllocs()
	for b.Loop() {
		w, err := xdsgen.BuildWDS(pc)
		if err != nil {
			b.Fatal(err)
		}
		if len(w.Addresses) != 1100 || len(w.Authorizations) != 100 {
			b.Fatalf("%d addresses, %d authorizations", len(w.Addresses), len(w.Authorizations))
		}
	}
}
