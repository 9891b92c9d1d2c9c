package controlplane

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// A kind sluice accepts but does not enforce is listed in /debug/status
// and logged as a WARN on every load, at startup and after each change.
func TestNotEnforcedReported(t *testing.T) {
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "policy.yaml", authz)
	r.write(t, "reviews.yaml", vs("reviews", "v1"))
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})

	st := r.status(t)
	if len(st.NotEnforced) != 1 {
		t.Fatalf("not_enforced: %+v", st.NotEnforced)
	}
	ne := st.NotEnforced[0]
	if ne.Kind != "extensions.istio.io/WasmPlugin" || ne.Namespace != "shop" || ne.Name != "deny-all" ||
		!strings.Contains(ne.File, "policy.yaml") || !strings.Contains(ne.Reason, "not run") {
		t.Errorf("not_enforced entry: %+v", ne)
	}
	if st.Resources != 1 || len(st.ConfigErrors) != 0 {
		t.Errorf("resources %d, errors %v", st.Resources, st.ConfigErrors)
	}
	warn := func() int {
		return len(r.log.lines("level=WARN", "NOT ENFORCED", "extensions.istio.io/WasmPlugin", "shop/deny-all", "policy.yaml"))
	}
	if n := warn(); n != 1 {
		t.Errorf("%d WARN lines at startup, want 1:\n%s", n, strings.Join(r.log.lines("NOT ENFORCED"), "\n"))
	}

	// Any change loads the folder again, and warns again.
	r.write(t, "reviews.yaml", vs("reviews", "v2"))
	waitUntil(t, "the edit to be pushed", func() error {
		if n := warn(); n != 2 {
			return fmt.Errorf("%d WARN lines", n)
		}
		return nil
	})
}

// An edit waits for one debounce only: the file source reports the raw
// change at once, and the control plane merges a burst of edits into one
// folder read and one push, a quiet period after the last.
func TestEditPushedAfterOneDebounce(t *testing.T) {
	const quiet = 300 * time.Millisecond
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "reviews.yaml", vs("reviews", "v0"))
	r = start(t, dir, DebounceOptions{Quiet: quiet, MaxDelay: 10 * time.Second})
	// The watch's first notification (it finds nothing changed since the
	// startup load, so it pushes nothing) settles before the burst.
	time.Sleep(2 * quiet)
	if n := r.c.pushes.Load(); n != 1 {
		t.Fatalf("%d pushes before any edit, want only the startup push", n)
	}
	pushesBefore := r.c.pushes.Load()
	configBefore := r.c.status().version

	first := time.Now()
	for i := 1; i <= 5; i++ {
		r.write(t, "reviews.yaml", vs("reviews", fmt.Sprintf("v%d", i)))
		time.Sleep(quiet / 10)
	}
	last := time.Now()
	var rec pushRecord
	waitUntil(t, "the burst to be pushed", func() error {
		if rec = r.status(t).LastPush; r.c.pushes.Load() == pushesBefore {
			return fmt.Errorf("no push yet")
		}
		return nil
	})
	if read := r.status(t).ConfigRead; !read.After(last) {
		t.Errorf("config_read %v is not after the last edit %v", read, last)
	}
	time.Sleep(2 * quiet) // room for a second push, which must not come
	if n := r.c.pushes.Load() - pushesBefore; n != 1 {
		t.Errorf("%d pushes for one burst of edits, want 1", n)
	}
	if n := r.c.status().version - configBefore; n != 1 {
		t.Errorf("the folder made %d new config versions for one burst, want 1 (one read per push)", n)
	}
	if !strings.Contains(strings.Join(r.c.status().subsets, ","), "v5") {
		t.Errorf("the last edit is not in force: %v", r.c.status().subsets)
	}
	// The first change reaches the debouncer without a quiet period of
	// its own (no second debounce stage before it) ...
	if d := rec.ChangeStart.Sub(first); d < 0 || d >= quiet {
		t.Errorf("the change reached the control plane %v after the edit, want well under the quiet period %v", d, quiet)
	}
	// ... and the push comes one quiet period after the last edit.
	if d := rec.Time.Sub(last); d < quiet-50*time.Millisecond || d > quiet+2*time.Second {
		t.Errorf("pushed %v after the last edit, want about the quiet period %v", d, quiet)
	}
	t.Logf("first edit to change seen: %v; last edit to push: %v (quiet %v)",
		rec.ChangeStart.Sub(first), rec.Time.Sub(last), quiet)
}

// Rebuilds (new push contexts) race proxies connecting; every proxy ends
// on the newest push context, and /debug/status shows each proxy's sent
// versions.
func TestPushesOnlyMoveForward(t *testing.T) {
	dir := t.TempDir()
	r := &running{dir: dir}
	r.write(t, "reviews.yaml", vs("reviews", "v1"))
	r = start(t, dir, DebounceOptions{Quiet: 50 * time.Millisecond, MaxDelay: time.Second})
	const node = "sidecar~127.0.0.1~web.default~default.svc.cluster.local"
	keep := r.openADS(t, node)
	keep.cds(t)

	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				r.c.rebuild(PushRequest{Full: true, Reasons: []string{"test"}, Start: time.Now()})
			}()
			go func() {
				defer wg.Done()
				a := r.openADS(t, node)
				a.cds(t)
				a.close()
			}()
		}
		wg.Wait()
		newest := r.c.push.Load().n
		if newest != r.c.pushes.Load() {
			t.Fatalf("round %d: push context %d stored, %d made", round, newest, r.c.pushes.Load())
		}
		// Pushes go through the server's queue: the proxy must end on the
		// newest push context once it drains.
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, ok := r.c.server.PushedVersion(node)
			if ok && got == newest {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: proxy holds push %d, newest is %d", round, got, newest)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st := r.status(t)
	if len(st.Proxies) != 1 || st.Proxies[0].ID != node || len(st.Proxies[0].Types) == 0 || st.Proxies[0].Types[0].SentVersion == "" {
		t.Errorf("proxies in /debug/status: %+v", st.Proxies)
	}
}
