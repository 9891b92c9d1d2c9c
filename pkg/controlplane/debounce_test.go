package controlplane

import (
	"context"
	"sync"
	"testing"
	"time"
)

// debounced runs debounce and collects the pushes it makes.
type debounced struct {
	in     chan PushRequest
	mu     sync.Mutex
	pushes []PushRequest
	times  []time.Time
}

func runDebounce(t *testing.T, opts DebounceOptions) *debounced {
	d := &debounced{in: make(chan PushRequest)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, d.in, opts, func(r PushRequest) {
			d.mu.Lock()
			d.pushes = append(d.pushes, r)
			d.times = append(d.times, time.Now())
			d.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func (d *debounced) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pushes)
}

// Requests closer together than the quiet period make one push carrying
// all their reasons, Full if any was, and the first one's start.
func TestDebounceMergesABurst(t *testing.T) {
	d := runDebounce(t, DebounceOptions{Quiet: 100 * time.Millisecond, MaxDelay: 10 * time.Second})
	start := time.Now()
	d.in <- PushRequest{Reasons: []string{"proxy"}, Start: start}
	for i := 0; i < 9; i++ {
		d.in <- PushRequest{Full: i == 4, Config: i == 6, Reasons: []string{"config"}, Start: time.Now()}
	}
	waitUntil(t, "a push", func() error {
		if d.count() == 0 {
			return errNoPush
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if n := d.count(); n != 1 {
		t.Fatalf("%d pushes for one burst, want 1", n)
	}
	p := d.pushes[0]
	if !p.Full || !p.Config || len(p.Reasons) != 10 || p.Reasons[0] != "proxy" || !p.Start.Equal(start) {
		t.Errorf("merged request: %+v", p)
	}
	if p.onlyConfig() {
		t.Error("a merged proxy reason counted as config only")
	}
}

// A stream of requests that never leaves a quiet period is still pushed,
// at most MaxDelay after the first request of each push (Istio's
// PILOT_DEBOUNCE_MAX).
func TestDebounceMaxDelay(t *testing.T) {
	const maxDelay = 200 * time.Millisecond
	d := runDebounce(t, DebounceOptions{Quiet: 100 * time.Millisecond, MaxDelay: maxDelay})
	begin := time.Now()
	for time.Since(begin) < 5*maxDelay {
		d.in <- PushRequest{Reasons: []string{"config"}}
		time.Sleep(20 * time.Millisecond)
	}
	if n := d.count(); n < 2 {
		t.Errorf("%d pushes during %v of requests every 20ms with MaxDelay %v, want several", n, 5*maxDelay, maxDelay)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, p := range d.pushes {
		if wait := d.times[i].Sub(p.Start); wait > maxDelay+time.Second {
			t.Errorf("push %d waited %v, MaxDelay is %v", i, wait, maxDelay)
		}
	}
}

var errNoPush = errString("no push yet")

type errString string

func (e errString) Error() string { return string(e) }
