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

func TestMaxRequests(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 1 << 30, MaxPendingRequests: 1 << 30, MaxRequests: 2, MaxRetries: 3}, true)
	a1, err1 := c.Admit(context.Background(), c.Hosts[0])
	a2, err2 := c.Admit(context.Background(), c.Hosts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("first two requests refused: %v, %v", err1, err2)
	}
	_, err := c.Admit(context.Background(), c.Hosts[0])
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request with max_requests 2: err %v, want overflow", err)
	}
	if got := c.Stats.RqPendingOverflow.Load(); got != 1 {
		t.Errorf("upstream_rq_pending_overflow = %d, want 1", got)
	}
	a1.Release()
	a1.Release() // twice is harmless
	a3, err := c.Admit(context.Background(), c.Hosts[0])
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	a2.Release()
	a3.Release()
	if c.Stats.RqActive.Load() != 0 {
		t.Errorf("upstream_rq_active = %d after all released", c.Stats.RqActive.Load())
	}
}

// TestMaxConnectionsAndPending: HTTP/1.1, one connection, one pending.
func TestMaxConnectionsAndPending(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1 << 30, MaxRetries: 3}, false)
	h := c.Hosts[0]
	a1, err := c.Admit(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}

	// The second request waits for the connection.
	got := make(chan error, 1)
	var a2 Admission
	go func() {
		var err error
		a2, err = c.Admit(context.Background(), h)
		got <- err
	}()
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 1 })
	// A third finds the pending queue full.
	if _, err := c.Admit(context.Background(), h); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request: err %v, want overflow (max_pending_requests 1)", err)
	}
	if c.Stats.RqPendingOverflow.Load() != 1 || c.Stats.CxOverflow.Load() != 2 {
		t.Errorf("rq_pending_overflow %d, cx_overflow %d, want 1 and 2", c.Stats.RqPendingOverflow.Load(), c.Stats.CxOverflow.Load())
	}
	select {
	case err := <-got:
		t.Fatalf("pending request went ahead while the connection was busy: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	a1.Release()
	if err := <-got; err != nil {
		t.Fatalf("pending request after the release: %v", err)
	}
	a2.Release()
	if c.Stats.RqPendingActive.Load() != 0 || c.Stats.RqPendingTotal.Load() != 1 {
		t.Errorf("pending active %d total %d, want 0 and 1", c.Stats.RqPendingActive.Load(), c.Stats.RqPendingTotal.Load())
	}

	// Another host with nothing in flight may always get a connection
	// (Envoy keeps one per selected host even over the limit).
	a3, err := c.Admit(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if h.Active.Load() != 1 {
		t.Fatalf("host in flight = %d, want 1 (Admit counts it)", h.Active.Load())
	}
	a4, err := c.Admit(context.Background(), c.Hosts[1])
	if err != nil {
		t.Fatalf("idle host refused a first connection: %v", err)
	}
	a3.Release()
	a4.Release()
}

func TestPendingGivesUpWithContext(t *testing.T) {
	c := limitCluster(Thresholds{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 1 << 30, MaxRetries: 3}, false)
	h := c.Hosts[0]
	a1, _ := c.Admit(context.Background(), h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Admit(ctx, h)
		done <- err
	}()
	waitFor(t, func() bool { return c.Stats.RqPendingActive.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("pending request whose context ended: %v", err)
	}
	if c.Stats.RqPendingActive.Load() != 0 {
		t.Errorf("pending active = %d after giving up", c.Stats.RqPendingActive.Load())
	}
	a1.Release()
	a2, err := c.Admit(context.Background(), h)
	if err != nil {
		t.Fatalf("slot not free after the waiter gave up: %v", err)
	}
	a2.Release()
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
	a, _ := c.Admit(context.Background(), c.Hosts[0])
	vals := map[string]any{}
	for _, kv := range c.Stats.StatValues() {
		vals[kv[0].(string)] = kv[1]
	}
	if vals["circuit_breakers.default.rq_open"] != uint64(1) || vals["circuit_breakers.default.remaining_rq"] != uint64(0) {
		t.Errorf("rq_open %v remaining_rq %v, want 1 and 0", vals["circuit_breakers.default.rq_open"], vals["circuit_breakers.default.remaining_rq"])
	}
	a.Release()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
