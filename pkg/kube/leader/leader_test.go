package leader_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/kube/leader"
)

// Two replicas: one leads at a time; when the leader stops, the other
// takes over within a lease.
func TestOneLeaderAndFailover(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	c.CreateNamespace(t, "istio-system", nil)
	var leading atomic.Int32
	var mu sync.Mutex
	var leaders []string
	run := func(ctx context.Context, id string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- leader.Run(ctx, leader.Options{Client: c.Client(t), Namespace: "istio-system", Name: "sluice-test-leader",
				Identity: id, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond},
				func(ctx context.Context) {
					if n := leading.Add(1); n != 1 {
						t.Errorf("%s leads while %d others do", id, n-1)
					}
					mu.Lock()
					leaders = append(leaders, id)
					mu.Unlock()
					<-ctx.Done()
					leading.Add(-1)
				})
		}()
		return done
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA, doneB := run(ctxA, "a"), run(ctxB, "b")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	waitFor("a leader", func() bool { return leading.Load() == 1 })
	mu.Lock()
	first := leaders[0]
	mu.Unlock()
	if first == "a" {
		stopA()
		<-doneA
	} else {
		stopB()
		<-doneB
	}
	waitFor("the other replica to take over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(leaders) == 2 && leaders[1] != first
	})
	stopA()
	stopB()
}
