package upstream

import (
	"strconv"
	"testing"
)

// eject marks hosts ejected as outlier detection would.
func eject(c *Cluster, hs ...*Host) {
	for _, h := range hs {
		h.ejected.Store(true)
	}
	c.live.outlier.gen.Add(1)
}

func level(prefix string, n int) []*Host {
	out := make([]*Host, n)
	for i := range out {
		out[i] = &Host{Address: prefix + strconv.Itoa(i) + ":80", Weight: 1}
	}
	return out
}

func prioCluster(panicThreshold float64, levels ...[]*Host) *Cluster {
	c := &Cluster{Name: "prio", LB: LBConfig{Policy: RoundRobin, PanicThreshold: panicThreshold}}
	for _, hs := range levels {
		c.Priorities = append(c.Priorities, PriorityLevel{Localities: []LocalityHosts{{Weight: 1, Hosts: hs}}})
	}
	c.Init(nil)
	return c
}

func share(c *Cluster, n int, hs []*Host) float64 {
	in := map[*Host]bool{}
	for _, h := range hs {
		in[h] = true
	}
	hit := 0
	for i := 0; i < n; i++ {
		if in[c.Pick(nil)] {
			hit++
		}
	}
	return float64(hit) / float64(n)
}

// TestPrioritySpillover checks Envoy's priority load with the 1.4
// overprovisioning factor: a priority keeps everything while 140% of its
// healthy share is at least 100%, then spills the rest to the next.
func TestPrioritySpillover(t *testing.T) {
	p0, p1 := level("10.0.0.", 4), level("10.0.1.", 4)
	c := prioCluster(0, p0, p1)
	cases := []struct {
		ejected int
		wantP0  float64 // share of requests to priority 0
	}{
		{0, 1.0},
		{1, 1.0},  // health min(100, 140×3/4=105) = 100
		{2, 0.70}, // 140×2/4 = 70
		{3, 0.35}, // 140×1/4 = 35
		{4, 0.0},
	}
	const n = 20000
	for _, tc := range cases {
		for i, h := range p0 {
			h.ejected.Store(i < tc.ejected)
		}
		c.live.outlier.gen.Add(1)
		got := share(c, n, p0)
		// ±0.02 absolute: the binomial standard deviation at n=20000 is
		// at most 0.0035.
		if got < tc.wantP0-0.02 || got > tc.wantP0+0.02 {
			t.Errorf("%d of 4 ejected in P0: P0 got %.3f of requests, want %.2f ±0.02", tc.ejected, got, tc.wantP0)
		}
		for _, h := range p0[:tc.ejected] {
			for i := 0; i < 50; i++ {
				if c.Pick(nil) == h {
					t.Fatalf("ejected host %s picked", h.Address)
				}
			}
		}
	}
}

func TestPanicThreshold(t *testing.T) {
	hs := level("10.0.0.", 4)
	// Istio's default (minHealthPercent 0): no panic, only the healthy host.
	c := prioCluster(0, hs)
	eject(c, hs[0], hs[1], hs[2])
	for i := 0; i < 100; i++ {
		if h := c.Pick(nil); h != hs[3] {
			t.Fatalf("panic disabled: picked %v, want only the healthy host", h)
		}
	}
	if c.Stats.LbHealthyPanic.Load() != 0 {
		t.Errorf("lb_healthy_panic = %d without panic", c.Stats.LbHealthyPanic.Load())
	}
	// Threshold 50%: 25% healthy is panic, every host gets traffic.
	for _, h := range hs {
		h.ejected.Store(false)
	}
	c2 := prioCluster(50, hs)
	eject(c2, hs[0], hs[1], hs[2])
	got := counts(c2, 4000, nil)
	for _, h := range hs {
		if !within(got[h.Address], 1000, 0.1) {
			t.Errorf("panic: %s got %d of 4000, want 1000 ±10%% (all hosts in panic)", h.Address, got[h.Address])
		}
	}
	if c2.Stats.LbHealthyPanic.Load() != 4000 {
		t.Errorf("lb_healthy_panic = %d, want 4000", c2.Stats.LbHealthyPanic.Load())
	}
	// All ejected with panic disabled: no host.
	for _, h := range hs {
		h.ejected.Store(false)
	}
	c3 := prioCluster(0, hs)
	eject(c3, hs...)
	if h := c3.Pick(nil); h != nil {
		t.Errorf("every host ejected, panic off: picked %s, want none", h.Address)
	}
}

func TestLocalityWeighted(t *testing.T) {
	a, b := level("10.0.0.", 2), level("10.0.1.", 2)
	c := &Cluster{Name: "loc", LB: LBConfig{Policy: RoundRobin, LocalityWeighted: true}}
	c.Priorities = []PriorityLevel{{Localities: []LocalityHosts{
		{Locality: "us-east/zone-a", Weight: 80, Hosts: a},
		{Locality: "us-east/zone-b", Weight: 20, Hosts: b},
	}}}
	c.Init(nil)
	const n = 40000
	if got := share(c, n, a); got < 0.78 || got > 0.82 {
		t.Errorf("locality weights 80/20: zone-a got %.3f, want 0.80 ±0.02", got)
	}
	// Half of zone-a ejected: its availability is min(1, 1.4×1/2) = 0.7,
	// so it weighs 80×0.7 = 56 against 20: 56/76 ≈ 0.737.
	eject(c, a[0])
	if got := share(c, n, a); got < 0.717 || got > 0.757 {
		t.Errorf("zone-a half ejected: zone-a got %.3f, want 0.737 ±0.02", got)
	}
}

func TestLocalityWeightedHash(t *testing.T) {
	a, b := level("10.0.0.", 1), level("10.0.1.", 3)
	c := &Cluster{Name: "lochash", LB: LBConfig{Policy: Maglev, LocalityWeighted: true}}
	c.Priorities = []PriorityLevel{{Localities: []LocalityHosts{
		{Weight: 50, Hosts: a},
		{Weight: 50, Hosts: b},
	}}}
	c.Init(nil)
	hit := 0
	const n = 20000
	for i := 0; i < n; i++ {
		if c.Pick(hashIn("k"+strconv.Itoa(i))) == a[0] {
			hit++
		}
	}
	// Envoy normalizes host weights within each locality: the lone host of
	// locality a takes half the keys.
	if f := float64(hit) / n; f < 0.47 || f > 0.53 {
		t.Errorf("lone host of a 50/50 locality got %.3f of keys, want 0.50 ±0.03", f)
	}
}
