package e2e

import (
	"fmt"
	"math"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestWeightedSplit: a VirtualService sending 90% of product traffic to
// subset v1 and 10% to v2 splits 1000 requests accordingly.
func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	m := testenv.NewMesh(t, testenv.MeshOptions{})
	m.WriteConfig("vs-product.yaml", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: product
spec:
  hosts: [product]
  http:
  - route:
    - destination: {host: product, subset: v1}
      weight: 90
    - destination: {host: product, subset: v2}
      weight: 10
`)
	service(t, m, "product", map[string]int{"http": 9080}, "v1", "v2")
	c := m.AddClient(testenv.ClientOptions{Name: "sleep"})
	m.WaitReady()
	// Converged once both subsets have endpoints at the client: in 200
	// requests at 10% the chance of seeing no v2 is 0.9^200, about 1e-9.
	m.WaitConverged(func() error {
		seen := map[string]int{}
		for i := 0; i < 200; i++ {
			r, err := c.Get("product:9080", "/", nil)
			if err != nil {
				return err
			}
			if r.Status != 200 || r.Echo == nil {
				return fmt.Errorf("request %d: %s", i, r)
			}
			seen[r.Echo.Version]++
		}
		if seen["v1"] == 0 || seen["v2"] == 0 {
			return fmt.Errorf("versions seen in 200 requests: %v", seen)
		}
		return nil
	}, convergeTimeout)
	requireSyncedNoNACK(t, m)

	const n = 1000
	// Tolerance: the binomial standard deviation of a fraction at n=1000 and
	// p=0.1 is sqrt(0.1*0.9/1000) ~ 0.0095 (0.9: the same), so ±0.04 is about
	// 4 sd: a correct split fails it about once in 15,000 runs, while a
	// split off by 5 points or more fails it nearly always.
	const tolerance = 0.04
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		r := get(t, c, "product:9080", "/", nil)
		if r.Status != 200 || r.Echo == nil || r.Echo.Service != "product" {
			t.Fatalf("request %d: %s", i, r)
		}
		counts[r.Echo.Version]++
	}
	t.Logf("split over %d requests: %v", n, counts)
	for version, want := range map[string]float64{"v1": 0.9, "v2": 0.1} {
		got := float64(counts[version]) / n
		if math.Abs(got-want) > tolerance {
			t.Errorf("%s got %.3f of traffic, want %.2f ± %.2f (counts %v)", version, got, want, tolerance, counts)
		}
	}
	if len(counts) != 2 {
		t.Errorf("responses from versions %v, want only v1 and v2", counts)
	}
}
