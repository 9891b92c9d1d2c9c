package upstream

import (
	"fmt"
	"math"
	"strconv"
	"testing"
)

func hosts(n int, weights ...uint32) []*Host {
	out := make([]*Host, n)
	for i := range out {
		w := uint32(1)
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = &Host{Address: "10.0.0." + strconv.Itoa(i+1) + ":8080", Weight: w}
	}
	return out
}

func newTestCluster(policy LBPolicy, hs []*Host) *Cluster {
	c := &Cluster{Name: "test", Hosts: hs, LB: LBConfig{Policy: policy, PanicThreshold: DefaultPanicThreshold}}
	c.Init(nil)
	return c
}

// counts picks n times and counts picks per host address.
func counts(c *Cluster, n int, in *PickInput) map[string]int {
	out := map[string]int{}
	for i := 0; i < n; i++ {
		h := c.Pick(in)
		if h == nil {
			out["<nil>"]++
			continue
		}
		out[h.Address]++
	}
	return out
}

// within reports whether got is within tol (relative) of want.
func within(got, want int, tol float64) bool {
	return math.Abs(float64(got-want)) <= tol*float64(want)
}

func TestXXHash64KnownValues(t *testing.T) {
	// Reference values from xxhsum -H1 (XXH64, seed 0) and, for the other
	// seeds, from the C reference library (libxxhash through
	// python3-xxhash 3.2.0's xxh64_intdigest), covering the short and the
	// 32-byte-stripe paths, the seed 1 maglev uses for its skip, and
	// hash-policy chaining (the previous hash as the seed).
	cases := []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xef46db3751d8e999},
		{"a", 0, 0xd24ec4f1a98c6e5b},
		{"abc", 0, 0x44bc2cf5ad770999},
		{"Nobody inspects the spammish repetition", 0, 0xfbcea83c8a378bf1},
		{"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", 0, 0xf952c619a1bc1e05},
		{"0123456789abcdefghijklmnopqrstuvwxyz0123", 0, 0x8df6b75c7d2f9d11},
		{"10.0.0.1:8080_0", 0, 0x23a29ae775dfd4a3},
		{"", 1, 0xd5afba1336a3be4b},
		{"10.0.0.1:8080", 1, 0x0dfce9efd349b428},
		{"reviews-v1.default.svc.cluster.local:9080", 1, 0xbbd67611df19b983},
		{"0123456789abcdefghijklmnopqrstuvwxyz0123", 1, 0x2c02dc2d0a53baf0},
		{"alice", 0x1234567890abcdef, 0x406721905316c67f},
	}
	for _, c := range cases {
		if got := XXHash64([]byte(c.in), c.seed); got != c.want {
			t.Errorf("XXHash64(%q, %d) = %#x, want %#x", c.in, c.seed, got, c.want)
		}
		if c.seed == 0 {
			if got := XXHash64String(c.in); got != c.want {
				t.Errorf("XXHash64String(%q) = %#x, want %#x", c.in, got, c.want)
			}
		}
	}
	// Hash policies hash on the request path: no allocation, seeded or not.
	key := []byte("reviews-v1.default.svc.cluster.local:9080")
	if n := testing.AllocsPerRun(100, func() { _ = XXHash64(key, 7) + XXHash64String("alice") }); n != 0 {
		t.Errorf("XXHash64 allocates %v times per call, want 0", n)
	}
}

func TestRoundRobinEqualWeightsCycles(t *testing.T) {
	c := newTestCluster(RoundRobin, hosts(3))
	first := c.Pick(nil)
	seen := map[*Host]int{first: 0}
	for i := 1; i < 3; i++ {
		seen[c.Pick(nil)] = i
	}
	if len(seen) != 3 {
		t.Fatalf("3 picks went to %d hosts, want each of the 3 once", len(seen))
	}
	// Exact: 300 more picks give every host exactly 100.
	got := counts(c, 300, nil)
	for addr, n := range got {
		if n != 100 {
			t.Errorf("%s got %d of 300 picks, want exactly 100", addr, n)
		}
	}
}

func TestRoundRobinWeightedIsExactAndSpread(t *testing.T) {
	hs := hosts(3, 5, 1, 1)
	c := newTestCluster(RoundRobin, hs)
	got := counts(c, 700, nil)
	want := map[string]int{hs[0].Address: 500, hs[1].Address: 100, hs[2].Address: 100}
	for a, n := range want {
		if got[a] != n {
			t.Errorf("%s: %d picks, want exactly %d (weights 5:1:1 over 100 cycles)", a, got[a], n)
		}
	}
	// Smooth: one cycle of 5:1:1 is a a b a c a a, so the heavy host is never
	// picked more than 4 times in a row (2 at the end of a cycle, 2 at the
	// start of the next), where plain weighted round robin would give 5.
	run, maxRun := 0, 0
	for i := 0; i < 70; i++ {
		if c.Pick(nil) == hs[0] {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 0
		}
	}
	if maxRun > 4 {
		t.Errorf("heavy host picked %d times in a row; smooth weighted round robin interleaves (max 4 for 5:1:1)", maxRun)
	}
}

func TestRandomDistribution(t *testing.T) {
	hs := hosts(4, 1, 1, 2, 4)
	c := newTestCluster(Random, hs)
	const n = 80000
	got := counts(c, n, nil)
	// Tolerance 5% relative: the standard deviation of the lightest host's
	// count is about 0.9% of its expectation at this n.
	for i, w := range []int{1, 1, 2, 4} {
		want := n * w / 8
		if !within(got[hs[i].Address], want, 0.05) {
			t.Errorf("%s: %d picks, want %d ±5%% (weight %d/8)", hs[i].Address, got[hs[i].Address], want, w)
		}
	}
}

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	hs := hosts(2)
	c := newTestCluster(LeastRequest, hs)
	hs[0].Active.Store(10) // busy
	got := counts(c, 10000, nil)
	// P2C with replacement picks the busy host only when both samples are
	// it: 1/4 of the time.
	if !within(got[hs[0].Address], 2500, 0.1) {
		t.Errorf("busy host got %d of 10000 picks, want 2500 ±10%% (both samples busy: 1/4)", got[hs[0].Address])
	}
	// With equal load, P2C is uniform.
	hs[0].Active.Store(0)
	got = counts(c, 10000, nil)
	if !within(got[hs[0].Address], 5000, 0.05) {
		t.Errorf("idle hosts: first got %d of 10000, want 5000 ±5%%", got[hs[0].Address])
	}
}

func TestLeastRequestManyHostsAvoidsBusiest(t *testing.T) {
	hs := hosts(5)
	c := newTestCluster(LeastRequest, hs)
	for i, h := range hs {
		h.Active.Store(int64(i)) // host i has i requests in flight
	}
	got := counts(c, 50000, nil)
	// P(host i chosen) = ((5-i)^2 - (4-i)^2)/25: 9,7,5,3,1 /25.
	// Each count is binomial: allow 5 standard deviations, so the test
	// fails on a wrong distribution (uniform would be 10000 each), not on
	// chance (6% was under 3σ for the least picked host).
	for i, h := range hs {
		p := float64(9-2*i) / 25
		want := 50000 * p
		tol := 5 * math.Sqrt(50000*p*(1-p))
		if d := math.Abs(float64(got[h.Address]) - want); d > tol {
			t.Errorf("host with %d active: %d picks, want %.0f ±%.0f (5σ)", i, got[h.Address], want, tol)
		}
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	hs := hosts(2, 1, 3)
	c := newTestCluster(LeastRequest, hs)
	got := counts(c, 40000, nil)
	// Idle: proportional to weight (sampled by weight; a tie keeps the
	// first sample).
	if !within(got[hs[1].Address], 30000, 0.05) {
		t.Errorf("weight-3 host got %d of 40000, want 30000 ±5%%", got[hs[1].Address])
	}
	// The weight-3 host with 6 in flight (2 per unit of weight) loses to the
	// weight-1 host with 1 (1 per unit) whenever both are sampled.
	hs[1].Active.Store(6)
	hs[0].Active.Store(1)
	got = counts(c, 40000, nil)
	// Chosen weight-3 only if both samples are it: (3/4)^2 = 9/16.
	if !within(got[hs[1].Address], 22500, 0.05) {
		t.Errorf("loaded weight-3 host got %d of 40000, want 22500 ±5%%", got[hs[1].Address])
	}
}

func hashIn(key string) *PickInput { return &PickInput{Hash: XXHash64String(key), HasHash: true} }

func TestHashStability(t *testing.T) {
	for _, policy := range []LBPolicy{RingHash, Maglev} {
		t.Run(policy.String(), func(t *testing.T) {
			hs := hosts(5)
			c := newTestCluster(policy, hs)
			// Same key, same host, every time.
			for i := 0; i < 100; i++ {
				k := "user-" + strconv.Itoa(i)
				first := c.Pick(hashIn(k))
				for j := 0; j < 5; j++ {
					if h := c.Pick(hashIn(k)); h != first {
						t.Fatalf("key %s went to %s then %s", k, first.Address, h.Address)
					}
				}
			}
			// A new cluster built from the same hosts maps keys the same.
			c2 := newTestCluster(policy, hosts(5))
			for i := 0; i < 1000; i++ {
				k := "user-" + strconv.Itoa(i)
				if a, b := c.Pick(hashIn(k)).Address, c2.Pick(hashIn(k)).Address; a != b {
					t.Fatalf("key %s: %s in one build, %s in another", k, a, b)
				}
			}
			// Adding a sixth host gives it about 1/6 of the keys. Envoy's ring
			// gives every host ceil(1024/n) entries, so going from 5 hosts
			// (205 entries each) to 6 (171 each) also drops 34 entries per
			// old host, whose keys fall to the next entry on the ring: up to
			// 5/6 × 34/205 ≈ 0.14 more move between old hosts. Maglev's
			// table moves few keys between old hosts.
			c6 := newTestCluster(policy, hosts(6))
			const n = 20000
			toNew, movedElsewhere := 0, 0
			for i := 0; i < n; i++ {
				k := "key-" + strconv.Itoa(i)
				a, b := c.Pick(hashIn(k)).Address, c6.Pick(hashIn(k)).Address
				switch {
				case b == "10.0.0.6:8080":
					toNew++
				case a != b:
					movedElsewhere++
				}
			}
			if frac := float64(toNew) / n; frac < 0.117 || frac > 0.217 {
				t.Errorf("adding 1 host to 5 gave it %.3f of keys, want about 1/6 (±0.05)", frac)
			}
			limit := 0.03
			if policy == RingHash {
				limit = 0.14
			}
			if frac := float64(movedElsewhere) / n; frac > limit {
				t.Errorf("%.3f of keys moved between old hosts, want at most %.2f", frac, limit)
			} else {
				t.Logf("adding a 6th host: %.3f of keys to it, %.3f between old hosts", float64(toNew)/n, frac)
			}
			// Keys spread over hosts roughly evenly.
			got := map[string]int{}
			for i := 0; i < n; i++ {
				got[c.Pick(hashIn("spread-"+strconv.Itoa(i))).Address]++
			}
			for _, h := range hs {
				if !within(got[h.Address], n/5, 0.2) {
					t.Errorf("%s got %d of %d keys, want %d ±20%%", h.Address, got[h.Address], n, n/5)
				}
			}
		})
	}
}

func TestHashWeights(t *testing.T) {
	for _, policy := range []LBPolicy{RingHash, Maglev} {
		hs := hosts(2, 1, 3)
		c := newTestCluster(policy, hs)
		got := map[string]int{}
		const n = 40000
		for i := 0; i < n; i++ {
			got[c.Pick(hashIn(fmt.Sprint("k", i))).Address]++
		}
		if !within(got[hs[1].Address], n*3/4, 0.06) {
			t.Errorf("%s: weight-3 host got %d of %d keys, want %d ±6%%", policy, got[hs[1].Address], n, n*3/4)
		}
	}
}

func TestHashAvoidPreviousHost(t *testing.T) {
	for _, policy := range []LBPolicy{RingHash, Maglev} {
		c := newTestCluster(policy, hosts(3))
		in := hashIn("sticky")
		first := c.Pick(in)
		in.Avoid, in.MaxSelectAttempts = []*Host{first}, 5
		if h := c.Pick(in); h == first {
			t.Errorf("%s: a retry avoiding %s got it again", policy, first.Address)
		}
	}
}

func TestRoundRobinAvoidPreviousHost(t *testing.T) {
	c := newTestCluster(RoundRobin, hosts(2))
	for i := 0; i < 10; i++ {
		first := c.Pick(nil)
		if h := c.Pick(&PickInput{Avoid: []*Host{first}, MaxSelectAttempts: 5}); h == first {
			t.Fatalf("retry avoiding %s got it again", first.Address)
		}
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	for _, policy := range []LBPolicy{RoundRobin, LeastRequest, Random, RingHash, Maglev} {
		c := newTestCluster(policy, hosts(4, 1, 2, 3, 4))
		in := &PickInput{Hash: 42, HasHash: true}
		if n := testing.AllocsPerRun(1000, func() { c.Pick(in) }); n != 0 {
			t.Errorf("%s: %.1f allocations per pick, want 0", policy, n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []LBPolicy{RoundRobin, LeastRequest, Random, RingHash, Maglev} {
		c := newTestCluster(policy, hosts(16))
		in := &PickInput{Hash: 42, HasHash: true}
		b.Run(policy.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Pick(in)
				}
			})
		})
	}
}
