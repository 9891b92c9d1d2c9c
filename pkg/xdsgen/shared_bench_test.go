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

// scalePush is 1000 services of 10 endpoints each in 10 namespaces (every
// tenth with a DestinationRule of two subsets and a VirtualService
// splitting between them), and 100 sidecars spread over the namespaces
// and three zones.
func scalePush(b *testing.B) (*model.PushContext, []*model.Proxy) {
	b.Helper()
	files := make([]strings.Builder, 10) // one a namespace: a file holds at most 10000 documents
	for s := 0; s < 1000; s++ {
		ns := fmt.Sprintf("ns%d", s%10)
		sb := &files[s%10]
		fmt.Fprintf(sb, "apiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: %s}\nspec: {selector: {app: svc%d}, ports: [{name: http, port: 80, targetPort: 8080}]}\n---\n", s, ns, s)
		for w := 0; w < 10; w++ {
			fmt.Fprintf(sb, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: svc%d-%d, namespace: %s}\n"+
				"spec: {address: 10.%d.%d.%d, labels: {app: svc%d, version: v%d}, locality: region/zone-%d, ports: {http: 8080}}\n---\n",
				s, w, ns, s/250, s%250, w+1, s, w%2+1, w%3)
		}
		if s%10 == 0 {
			host := fmt.Sprintf("svc%d.%s.svc.cluster.local", s, ns)
			fmt.Fprintf(sb, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: svc%d, namespace: %s}\n"+
				"spec: {host: %s, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n---\n", s, ns, host)
			fmt.Fprintf(sb, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc%d, namespace: %s}\n"+
				"spec: {hosts: [%s], http: [{route: [{destination: {host: %s, subset: v1}, weight: 90}, {destination: {host: %s, subset: v2}, weight: 10}]}]}\n---\n",
				s, ns, host, host, host)
		}
	}
	var resources []*config.Resource
	for i := range files {
		dec := config.Decode([]byte(files[i].String()), config.DecodeOptions{File: fmt.Sprintf("ns%d.yaml", i)})
		if len(dec.Errors) > 0 {
			b.Fatal(dec.Errors)
		}
		resources = append(resources, dec.Resources...)
	}
	pc := model.NewPushContext(model.PushOptions{Version: "1", Mesh: meshconfig.WithTelemetryDefaults(&meshv1alpha1.MeshConfig{}), Resources: resources})
	var proxies []*model.Proxy
	for i := 0; i < 100; i++ {
		p := sidecarFor(fmt.Sprintf("ns%d", i%10), map[string]string{"app": fmt.Sprintf("client%d", i)})
		p.Name, p.Locality = fmt.Sprintf("client%d", i), fmt.Sprintf("region/zone-%d", i%3)
		p.Inbound = []model.InboundPort{{Address: fmt.Sprintf("10.200.0.%d:8080", i), App: "127.0.0.1:9080"}}
		p.ID = p.NodeID()
		proxies = append(proxies, &p)
	}
	return pc, proxies
}

// BenchmarkGenerate100Proxies: one push's config for 100 proxies, each
// generated on its own (fresh: a Generator per proxy, as before) or with
// one Generator for the push (shared), and with a Generator that has
// built everything already (warm). One op is all 100 proxies,
// validation included. Run with -benchtime=1x or 3x: an op of the fresh
// path takes seconds.
func BenchmarkGenerate100Proxies(b *testing.B) {
	pc, proxies := scalePush(b)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, p := range proxies {
				if _, err := xdsgen.NewGenerator(pc).Generate(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// warm: the Generator has built everything already; what each
	// further proxy of the push costs (listeners, inbound, lookups).
	b.Run("warm", func(b *testing.B) {
		gen := xdsgen.NewGenerator(pc)
		for _, p := range proxies {
			if _, err := gen.Generate(p); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, p := range proxies {
				if _, err := gen.Generate(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("shared", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			gen := xdsgen.NewGenerator(pc)
			for _, p := range proxies {
				if _, err := gen.Generate(p); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
