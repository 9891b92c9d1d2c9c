package filesource

import (
	"testing"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// A resource keeps its age across edits; one added later is younger; one
// removed and added again is new. Istio breaks conflicts by this age.
func TestCreationOrder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", vs("alpha", "v1"))
	s := newSource(t, dir)
	first, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	alpha := find(first, config.KindVirtualService, "default", "alpha").Created
	if alpha == 0 {
		t.Fatal("no creation time given")
	}
	ch := run(t, s)
	write(t, dir, "b.yaml", vs("beta", "v1"))
	write(t, dir, "a.yaml", vs("alpha", "v2")) // an edit
	snap := waitFor(t, ch, "both files", func(s Snapshot) bool {
		return subsetOf(t, s, "alpha") == "v2" && find(s, config.KindVirtualService, "default", "beta") != nil
	})
	if got := find(snap, config.KindVirtualService, "default", "alpha").Created; got != alpha {
		t.Errorf("an edit changed alpha's age: %d -> %d", alpha, got)
	}
	beta := find(snap, config.KindVirtualService, "default", "beta").Created
	if beta <= alpha {
		t.Errorf("beta, added later, must be younger: alpha %d beta %d", alpha, beta)
	}
	write(t, dir, "a.yaml", "") // alpha removed ...
	waitFor(t, ch, "alpha removed", func(s Snapshot) bool { return find(s, config.KindVirtualService, "default", "alpha") == nil })
	write(t, dir, "a.yaml", vs("alpha", "v3")) // ... and created again
	snap = waitFor(t, ch, "alpha back", func(s Snapshot) bool { return find(s, config.KindVirtualService, "default", "alpha") != nil })
	if got := find(snap, config.KindVirtualService, "default", "alpha").Created; got <= beta {
		t.Errorf("a re-created resource is new: alpha %d, beta %d", got, beta)
	}
}
