package analysis

import "testing"

// BenchmarkControlPlaneAnalysis is one continuous-analysis run of the
// control plane over pkg/xdsgen's golden inputs: snapshot and registry
// built from decoded resources, then every control plane analyzer.
func BenchmarkControlPlaneAnalysis(b *testing.B) {
	s, err := Load([]string{"../xdsgen/testdata"}, LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	resources := s.All()
	names := ControlPlaneAnalyzers()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		objs := make([]*Object, len(resources))
		copy(objs, resources)
		if _, err := Run(NewSnapshot(objs, s.Mesh), RunOptions{Analyzers: names}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(resources)), "resources")
}
