package xdsgen

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFlightCacheBuildsOnce: many goroutines asking for one key while it
// is built get the one value, built once; other keys build their own.
func TestFlightCacheBuildsOnce(t *testing.T) {
	var c flightCache[string, *int]
	var builds atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	got := make([]*int, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.get("k", func() (*int, error) {
				builds.Add(1)
				<-release
				n := 7
				return &n, nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times, want 1", n)
	}
	for i, v := range got {
		if v != got[0] || *v != 7 {
			t.Fatalf("caller %d got %p, want the shared %p", i, v, got[0])
		}
	}
	other, _ := c.get("other", func() (*int, error) { n := 8; return &n, nil })
	if other == got[0] || *other != 8 {
		t.Fatal("another key shares the first key's value")
	}
}

// TestFlightCachePanicIsError: a build that panics is an error for every
// caller of its key, not an empty value.
func TestFlightCachePanicIsError(t *testing.T) {
	var c flightCache[string, *int]
	for i := 0; i < 2; i++ {
		v, err := c.get("k", func() (*int, error) { panic("boom") })
		if err == nil || !strings.Contains(err.Error(), "boom") || v != nil {
			t.Fatalf("call %d: got %v, %v; want the panic as an error", i, v, err)
		}
	}
}
