package upstream

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func odCluster(clk Clock, od OutlierConfig, hs []*Host) *Cluster {
	c := &Cluster{Name: "od", Hosts: hs, LB: LBConfig{Policy: RoundRobin}, Outlier: &od, Clock: clk}
	c.Init(nil)
	return c
}

func istioLike() OutlierConfig {
	return OutlierConfig{
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent: 100, Consecutive5xx: 3, Consecutive5xxEnforcing: 100,
		ConsecutiveGateway: 5, ConsecutiveGatewayEnforcing: 0, ConsecutiveLocal: 5, ConsecutiveLocalEnforcing: 100,
	}
}

func fail(c *Cluster, h *Host, code, n int) {
	for i := 0; i < n; i++ {
		c.Record(h, OutcomeResponse, code)
	}
}

// pickedWithin reports whether h is picked in n picks.
func pickedWithin(c *Cluster, h *Host, n int) bool {
	for i := 0; i < n; i++ {
		if c.Pick(nil) == h {
			return true
		}
	}
	return false
}

func TestOutlierConsecutive5xxEjectionAndReturn(t *testing.T) {
	clk := newFakeClock()
	hs := hosts(3)
	c := odCluster(clk, istioLike(), hs)
	bad := hs[0]

	fail(c, bad, 500, 2)
	c.Record(bad, OutcomeResponse, 200) // a success resets the count
	fail(c, bad, 503, 2)
	if bad.Ejected() {
		t.Fatal("ejected after 2 consecutive 5xx (threshold 3)")
	}
	fail(c, bad, 500, 1)
	if !bad.Ejected() {
		t.Fatal("not ejected after 3 consecutive 5xx")
	}
	if got := c.Stats.OutlierActive.Load(); got != 1 {
		t.Errorf("ejections_active = %d, want 1", got)
	}
	if c.Stats.OutlierEnforcedTotal.Load() != 1 || c.Stats.OutlierEnforced5xx.Load() != 1 {
		t.Errorf("ejections_enforced_total %d, consecutive_5xx %d, want 1 and 1",
			c.Stats.OutlierEnforcedTotal.Load(), c.Stats.OutlierEnforced5xx.Load())
	}
	if pickedWithin(c, bad, 30) {
		t.Fatal("ejected host picked")
	}

	// First ejection: base × 1 = 30s, checked at interval ticks (every 10s).
	clk.Advance(29 * time.Second)
	if pickedWithin(c, bad, 30) || !bad.Ejected() {
		t.Fatal("back before its 30s ejection time")
	}
	clk.Advance(1 * time.Second)
	if !pickedWithin(c, bad, 30) {
		t.Fatal("not back after 30s")
	}
	if c.Stats.OutlierActive.Load() != 0 {
		t.Errorf("ejections_active = %d after return, want 0", c.Stats.OutlierActive.Load())
	}

	// Second ejection right away: base × 2 = 60s.
	fail(c, bad, 500, 3)
	if !bad.Ejected() {
		t.Fatal("not ejected the second time")
	}
	clk.Advance(50 * time.Second)
	if pickedWithin(c, bad, 30) {
		t.Fatal("second ejection ended before 60s")
	}
	clk.Advance(10 * time.Second)
	if !pickedWithin(c, bad, 30) {
		t.Fatal("not back 60s after its second ejection")
	}
	// Staying healthy shrinks the multiplier by one per interval: after
	// two more intervals it is 0, and the next ejection lasts 30s again.
	clk.Advance(10 * time.Second)
	c.Tick()
	clk.Advance(10 * time.Second)
	c.Tick()
	fail(c, bad, 500, 3)
	clk.Advance(30 * time.Second)
	if !pickedWithin(c, bad, 30) {
		t.Fatal("after the multiplier decayed, the ejection should last 30s again")
	}
	if n := c.Snapshot(bad).NumEjections; n != 3 {
		t.Errorf("num ejections = %d, want 3", n)
	}
}

func TestOutlierMaxEjectionTime(t *testing.T) {
	clk := newFakeClock()
	od := istioLike()
	od.MaxEjectionTime = 60 * time.Second
	hs := hosts(2)
	c := odCluster(clk, od, hs)
	for i := 0; i < 5; i++ { // multiplier grows to at most (60+30)/30 = 3
		fail(c, hs[0], 500, 3)
		clk.Advance(100 * time.Second)
		c.Tick()
		if hs[0].Ejected() {
			t.Fatalf("ejection %d lasted over 100s; max_ejection_time is 60s", i+1)
		}
	}
	fail(c, hs[0], 500, 3)
	clk.Advance(59 * time.Second)
	c.Tick()
	if !hs[0].Ejected() {
		t.Fatal("capped ejection ended before 60s")
	}
	clk.Advance(1 * time.Second)
	c.Tick()
	if hs[0].Ejected() {
		t.Fatal("ejection lasted beyond max_ejection_time")
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	clk := newFakeClock()
	od := istioLike()
	od.MaxEjectionPercent = 10 // Istio's default
	hs := hosts(2)
	c := odCluster(clk, od, hs)
	fail(c, hs[0], 500, 3)
	if hs[0].Ejected() {
		t.Fatal("ejected 1 of 2 hosts (50%) with max_ejection_percent 10")
	}
	if c.Stats.OutlierOverflow.Load() != 1 || c.Stats.OutlierDetected5xx.Load() != 1 {
		t.Errorf("ejections_overflow %d, detected_consecutive_5xx %d, want 1 and 1",
			c.Stats.OutlierOverflow.Load(), c.Stats.OutlierDetected5xx.Load())
	}
	od.MaxEjectionPercent = 50
	c = odCluster(clk, od, hosts(2))
	fail(c, c.Hosts[0], 500, 3)
	fail(c, c.Hosts[1], 500, 3)
	if !c.Hosts[0].Ejected() || c.Hosts[1].Ejected() {
		t.Fatal("with 50%, exactly one of two hosts may be ejected")
	}
}

func TestOutlierGatewayErrors(t *testing.T) {
	clk := newFakeClock()
	od := istioLike()
	od.Consecutive5xx, od.Consecutive5xxEnforcing = 0, 0 // Istio: consecutive5xxErrors: 0
	od.ConsecutiveGateway, od.ConsecutiveGatewayEnforcing = 2, 100
	hs := hosts(2)
	c := odCluster(clk, od, hs)
	fail(c, hs[0], 502, 1)
	fail(c, hs[0], 500, 1) // a non-gateway 5xx resets the gateway count
	fail(c, hs[0], 504, 1)
	if hs[0].Ejected() {
		t.Fatal("ejected without 2 consecutive gateway errors")
	}
	fail(c, hs[0], 503, 1)
	if !hs[0].Ejected() || c.Stats.OutlierEnforcedGateway.Load() != 1 {
		t.Fatal("not ejected after 2 consecutive gateway errors")
	}
}

func TestOutlierLocalOrigin(t *testing.T) {
	clk := newFakeClock()
	// Without the split, a connect failure is a 503: 3 eject.
	hs := hosts(2)
	c := odCluster(clk, istioLike(), hs)
	for i := 0; i < 3; i++ {
		c.Record(hs[0], OutcomeConnectFailed, 0)
	}
	if !hs[0].Ejected() {
		t.Fatal("3 connect failures (counted as 503s) did not eject")
	}
	// With the split, they count only as local-origin failures.
	od := istioLike()
	od.SplitLocalOrigin, od.ConsecutiveLocal = true, 2
	hs = hosts(2)
	c = odCluster(clk, od, hs)
	c.Record(hs[0], OutcomeTimeout, 0)
	// An answer, even a 5xx, means the connection worked: it resets the
	// local-origin count (Envoy's LocalOriginConnectSuccess) and counts
	// only towards the 5xx threshold.
	c.Record(hs[0], OutcomeResponse, 500)
	c.Record(hs[0], OutcomeConnectFailed, 0)
	if hs[0].Ejected() {
		t.Fatal("ejected after local-origin failures that were not consecutive")
	}
	c.Record(hs[0], OutcomeConnectFailed, 0)
	if !hs[0].Ejected() || c.Stats.OutlierEnforcedLocal.Load() != 1 {
		t.Fatal("2 consecutive local-origin failures did not eject")
	}
}

// TestOutlierStateSurvivesPush builds a new cluster generation over the
// same host records: the ejection, its clock and the counts carry over.
func TestOutlierStateSurvivesPush(t *testing.T) {
	clk := newFakeClock()
	hs := hosts(3)
	c1 := odCluster(clk, istioLike(), hs)
	fail(c1, hs[0], 500, 3)
	fail(c1, hs[1], 500, 2)
	od := istioLike()
	c2 := &Cluster{Name: "od", Hosts: hs, LB: LBConfig{Policy: LeastRequest}, Outlier: &od, Clock: clk, Stats: c1.Stats}
	c2.Init(c1)
	if pickedWithin(c2, hs[0], 30) {
		t.Fatal("ejected host picked by the new generation")
	}
	fail(c2, hs[1], 500, 1) // third consecutive, counted across generations
	if !hs[1].Ejected() {
		t.Fatal("consecutive count did not carry over")
	}
	clk.Advance(30 * time.Second)
	if !pickedWithin(c2, hs[0], 60) {
		t.Fatal("host ejected under the old generation did not come back under the new")
	}
	// The old generation sees the change too (requests still on it).
	if !pickedWithin(c1, hs[0], 60) {
		t.Fatal("old generation did not see the host come back")
	}
}
