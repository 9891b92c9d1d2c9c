package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

func limitCluster(th Thresholds, http2 bool) *Cluster {
	c := &Cluster{Name: "cb", Hosts: hosts(2), Limits: th, HTTP2: http2}
	c.Init(nil)
	return c
}

// TestMaxRequests: a cluster without a connection pool checks max_requests
// on arrival (with one, it is checked at attach: pool_test.go).
func TestMaxRequests(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 1 << 30, MaxPendingRequests: 1 << 30, MaxRequests: 2, MaxRetries: 3}, true)
	a1, err1 := c.Admit(context.Background(), c.Hosts[0], c.Hosts[0].Address, true)
	a2, err2 := c.Admit(context.Background(), c.Hosts[1], c.Hosts[1].Address, true)
	if err1 != nil || err2 != nil {
		t.Fatalf("first two requests refused: %v, %v", err1, err2)
	}
	_, err := c.Admit(context.Background(), c.Hosts[0], c.Hosts[0].Address, true)
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request with max_requests 2: err %v, want overflow", err)
	}
	if got := c.Stats.RqPendingOverflow.Load(); got != 1 {
		t.Errorf("upstream_rq_pending_overflow = %d, want 1", got)
	}
	a1.Release()
	a1.Release() // twice is harmless
	a3, err := c.Admit(context.Background(), c.Hosts[0], c.Hosts[0].Address, true)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	a2.Release()
	a3.Release()
	if c.Stats.RqActive.Load() != 0 {
		t.Errorf("upstream_rq_active = %d after all released", c.Stats.RqActive.Load())
	}
}

func TestMaxRetries(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 10, MaxPendingRequests: 10, MaxRequests: 10, MaxRetries: 1}, false)
	if !c.TryRetry() {
		t.Fatal("first retry refused")
	}
	if c.TryRetry() {
		t.Fatal("second concurrent retry allowed with max_retries 1")
	}
	if c.Stats.RqRetryOverflow.Load() != 1 {
		t.Errorf("upstream_rq_retry_overflow = %d, want 1", c.Stats.RqRetryOverflow.Load())
	}
	c.ReleaseRetry()
	if !c.TryRetry() {
		t.Fatal("retry refused after release")
	}
}

func TestCircuitBreakerGauges(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 10, MaxPendingRequests: 10, MaxRequests: 1, MaxRetries: 3}, true)
	a, _ := c.Admit(context.Background(), c.Hosts[0], c.Hosts[0].Address, true)
	vals := map[string]any{}
	for _, kv := range c.Stats.StatValues() {
		vals[kv[0].(string)] = kv[1]
	}
	if vals["circuit_breakers.default.rq_open"] != uint64(1) || vals["circuit_breakers.default.remaining_rq"] != uint64(0) {
		t.Errorf("rq_open %v remaining_rq %v, want 1 and 0", vals["circuit_breakers.default.rq_open"], vals["circuit_breakers.default.remaining_rq"])
	}
	a.Release()
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
