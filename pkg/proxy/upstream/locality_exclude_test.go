package upstream

import (
	"reflect"
	"strings"
	"testing"
)

func TestExcludeLoad(t *testing.T) {
	cases := []struct {
		load    []uint32
		exclude uint64
		want    []uint32
	}{
		{[]uint32{100, 0, 0}, 0b001, []uint32{0, 100, 0}}, // the tried level's load spills to the next
		{[]uint32{70, 30, 0}, 0b001, []uint32{0, 100, 0}}, // ... added to what it had
		{[]uint32{100, 0, 0}, 0b011, []uint32{0, 0, 100}}, // two levels tried
		{[]uint32{0, 100}, 0b010, []uint32{100, 0}},       // nothing below: back up to the last level left
		{[]uint32{100}, 0b001, []uint32{100}},             // every level excluded: unchanged
		{[]uint32{50, 50, 0}, 0b100, []uint32{50, 50, 0}}, // excluding an idle level changes nothing
	}
	for _, c := range cases {
		if got := excludeLoad(c.load, c.exclude, nil); !reflect.DeepEqual(got, c.want) {
			t.Errorf("excludeLoad(%v, %b) = %v, want %v", c.load, c.exclude, got, c.want)
		}
	}
}

// A retry that excludes the level it tried goes to the next level, even
// while every host of the tried level is healthy and it takes all the
// load (Istio's retryRemoteLocalities).
func TestPickExcludingPriorities(t *testing.T) {
	p0, p1 := level("10.0.0.", 2), level("10.0.1.", 2)
	c := prioCluster(0, p0, p1)
	in := &PickInput{ExcludePriorities: 1 << 0}
	for i := 0; i < 200; i++ {
		h := c.Pick(in)
		if h == nil || !strings.HasPrefix(h.Address, "10.0.1.") {
			t.Fatalf("pick %d excluding priority 0 chose %v", i, h)
		}
	}
	if h := c.Pick(nil); !strings.HasPrefix(h.Address, "10.0.0.") {
		t.Errorf("without exclusion priority 0 takes the load, got %s", h.Address)
	}
}
