package security

import "testing"

// BenchmarkHTTPFilters: one workload's filters from Istio's largest
// builder input (allow-full-rule: every source, operation and condition).
func BenchmarkHTTPFilters(b *testing.B) {
	push := pushFrom(b, "testdata/istio/http/allow-full-rule-in.yaml", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HTTPFilters(push, httpbin); err != nil {
			b.Fatal(err)
		}
	}
}
