package filesource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// vs is a VirtualService routing name to subset.
func vs(name, subset string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s, subset: %s}
`, name, name, name, subset)
}

// badVS is a VirtualService that decodes but fails validation.
func badVS(name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s}
      weight: -1
`, name, name, name)
}

const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
`

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameWrite replaces a file the way vim and many tools do: write a new
// file beside it, then rename it over the old one.
func renameWrite(t *testing.T, dir, rel, content string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func subsetOf(t *testing.T, snap Snapshot, name string) string {
	t.Helper()
	r := find(snap, config.KindVirtualService, "default", name)
	if r == nil {
		return ""
	}
	return r.Spec.(*networking.VirtualService).Http[0].Route[0].Destination.Subset
}

func find(snap Snapshot, kind config.Kind, ns, name string) *config.Resource {
	for _, r := range snap.Resources {
		if r.Kind == kind && r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

// hasError reports whether snap has an error for file whose field and
// message contain the given strings.
func hasError(snap Snapshot, file, field, msg string) bool {
	for _, e := range snap.Errors {
		if strings.HasSuffix(e.Source.File, file) && strings.Contains(e.Field, field) && strings.Contains(e.Error(), msg) {
			return true
		}
	}
	return false
}

func newSource(t *testing.T, dir string) *Source {
	t.Helper()
	s, err := New(Options{Dir: dir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run starts s.Run and, as the control plane does, loads the folder
// after each change notification once 20ms passed without another one,
// sending every new snapshot on the channel returned; the run stops when
// the test ends.
func run(t *testing.T, s *Source) <-chan Snapshot {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Snapshot)
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx, changed); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		var sent uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			for quiet := false; !quiet; {
				select {
				case <-changed:
				case <-time.After(20 * time.Millisecond):
					quiet = true
				}
			}
			snap, err := s.Load()
			if err != nil {
				t.Logf("Load: %v", err)
			}
			if snap.Version <= sent {
				continue
			}
			select {
			case out <- snap:
				sent = snap.Version
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return out
}

// waitFor receives snapshots until ok accepts one, failing the test
// after a generous deadline.
func waitFor(t *testing.T, ch <-chan Snapshot, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last Snapshot
	for {
		select {
		case snap := <-ch:
			last = snap
			if ok(snap) {
				return snap
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last snapshot: version %d, %d resources, errors:\n%v",
				what, last.Version, len(last.Resources), last.Errors)
		}
	}
}

func TestNewNeedsDir(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no error without Dir")
	}
}

func TestLoadUnreadableDir(t *testing.T) {
	s := newSource(t, filepath.Join(t.TempDir(), "missing"))
	if _, err := s.Load(); err == nil {
		t.Error("no error for a missing folder")
	}
}

func TestLoadInitial(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", vs("reviews", "v1")+"---\n"+`apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
`)
	write(t, dir, "shop/rules/reviews-dr.yml", dr)
	write(t, dir, "svc.json", `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings"}, "spec": {"ports": [{"port": 9080}]}}`)
	// None of these are read.
	write(t, dir, ".hidden.yaml", "not: [valid")
	write(t, dir, ".git/config.yaml", "not: [valid")
	write(t, dir, "notes.txt", "not: [valid")
	write(t, dir, "reviews.yaml~", "not: [valid")
	write(t, dir, ".#reviews.yaml", "not: [valid")
	write(t, dir, "reviews.yaml.swp", "not: [valid")

	snap, err := newSource(t, dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Errors) != 0 {
		t.Errorf("errors: %v", snap.Errors)
	}
	if snap.Version != 1 {
		t.Errorf("version = %d, want 1", snap.Version)
	}
	var keys []string
	for _, r := range snap.Resources {
		keys = append(keys, r.Key().String())
	}
	want := "DestinationRule shop/reviews,Service default/ratings,VirtualService default/reviews"
	if got := strings.Join(keys, ","); got != want {
		t.Errorf("resources = %s, want %s", got, want)
	}
	if r := find(snap, config.KindDestinationRule, "shop", "reviews"); r == nil ||
		r.Source.File != filepath.Join(dir, "shop", "rules", "reviews-dr.yml") || r.Source.Doc != 1 {
		t.Errorf("DestinationRule source: %+v", r)
	}
}

func TestLoadFileNeverGood(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "good.yaml", vs("ratings", "v1"))
	write(t, dir, "bad.yaml", badVS("reviews"))
	write(t, dir, "broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: [\n")
	snap, err := newSource(t, dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Resources) != 1 || snap.Resources[0].Name != "ratings" {
		t.Errorf("resources: %v", snap.Resources)
	}
	if !hasError(snap, "bad.yaml", "spec.http[0].route[0].weight", "VirtualService default/reviews") {
		t.Errorf("no validation error for bad.yaml: %v", snap.Errors)
	}
	if !hasError(snap, "broken.yaml", "", "broken.yaml") {
		t.Errorf("no decode error for broken.yaml: %v", snap.Errors)
	}
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", vs("a", "v1"))
	write(t, dir, "b.yaml", vs("b", "v1"))
	write(t, dir, "c.yaml", vs("c", "v1"))
	big := filepath.Join(dir, "big.yaml")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(config.MaxFileBytes + 1); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	s := newSource(t, dir)
	s.maxFiles = 3
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !hasError(snap, "big.yaml", "", "more than the limit") {
		t.Errorf("no error for the big file: %v", snap.Errors)
	}
	// Files in path order: a, b, big, c; c is past the limit of 3.
	if !hasError(snap, "c.yaml", "", "limit of 3") {
		t.Errorf("no error for the file past the limit: %v", snap.Errors)
	}
	if find(snap, config.KindVirtualService, "default", "c") != nil || find(snap, config.KindVirtualService, "default", "b") == nil {
		t.Errorf("resources: %v", snap.Resources)
	}
}

func TestRunWithoutLoadSendsFirstSnapshot(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", vs("reviews", "v1"))
	ch := run(t, newSource(t, dir))
	snap := waitFor(t, ch, "the first snapshot", func(s Snapshot) bool { return true })
	if snap.Version != 1 || subsetOf(t, snap, "reviews") != "v1" {
		t.Errorf("got version %d, resources %v", snap.Version, snap.Resources)
	}
}

func TestRunFollowsEdits(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", vs("reviews", "v1"))
	write(t, dir, "ratings.yaml", vs("ratings", "v1"))
	s := newSource(t, dir)
	first, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	ch := run(t, s)

	// An edit applies.
	write(t, dir, "reviews.yaml", vs("reviews", "v2"))
	snap := waitFor(t, ch, "reviews to route to v2", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v2" })
	if snap.Version <= first.Version || len(snap.Errors) != 0 {
		t.Errorf("version %d after %d, errors %v", snap.Version, first.Version, snap.Errors)
	}

	// An invalid edit keeps the last good version and says why.
	write(t, dir, "reviews.yaml", badVS("reviews"))
	snap = waitFor(t, ch, "the invalid edit to be reported", func(s Snapshot) bool { return len(s.Errors) > 0 })
	if !hasError(snap, "reviews.yaml", "spec.http[0].route[0].weight", "cannot be negative") {
		t.Errorf("errors do not name the file and field: %v", snap.Errors)
	}
	if got := subsetOf(t, snap, "reviews"); got != "v2" {
		t.Errorf("last good version not kept: subset %q", got)
	}
	msg := snap.Errors[0].Error()
	if !strings.Contains(msg, filepath.Join(dir, "reviews.yaml")) || !strings.Contains(msg, "VirtualService default/reviews") {
		t.Errorf("message %q does not name file and resource", msg)
	}

	// So does a file that no longer parses.
	write(t, dir, "reviews.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: [\n")
	snap = waitFor(t, ch, "the broken edit to be reported", func(s Snapshot) bool {
		return hasError(s, "reviews.yaml", "", "YAML")
	})
	if got := subsetOf(t, snap, "reviews"); got != "v2" {
		t.Errorf("last good version not kept: subset %q", got)
	}

	// A fix clears the error.
	write(t, dir, "reviews.yaml", vs("reviews", "v3"))
	snap = waitFor(t, ch, "the fix", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v3" })
	if len(snap.Errors) != 0 {
		t.Errorf("errors after the fix: %v", snap.Errors)
	}

	// Rewriting the same content changes nothing; the next real change
	// is the next version.
	before := snap.Version
	write(t, dir, "reviews.yaml", vs("reviews", "v3"))
	write(t, dir, "ratings.yaml", vs("ratings", "v2"))
	snap = waitFor(t, ch, "ratings to route to v2", func(s Snapshot) bool { return subsetOf(t, s, "ratings") == "v2" })
	if snap.Version != before+1 {
		t.Errorf("version %d, want %d", snap.Version, before+1)
	}

	// Deleting a file removes its resources.
	if err := os.Remove(filepath.Join(dir, "reviews.yaml")); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, ch, "reviews to be removed", func(s Snapshot) bool {
		return find(s, config.KindVirtualService, "default", "reviews") == nil
	})
	if len(snap.Resources) != 1 || len(snap.Errors) != 0 {
		t.Errorf("after delete: %v %v", snap.Resources, snap.Errors)
	}
}

func TestRunDeletingBadFileClearsItsErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.yaml", badVS("reviews"))
	s := newSource(t, dir)
	if snap, err := s.Load(); err != nil || len(snap.Errors) == 0 {
		t.Fatalf("load: %v %v", snap.Errors, err)
	}
	ch := run(t, s)
	if err := os.Remove(filepath.Join(dir, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "the errors to go", func(s Snapshot) bool { return len(s.Errors) == 0 })
}

func TestRunRenameStyleWrites(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", vs("reviews", "v1"))
	s := newSource(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	ch := run(t, s)
	for _, subset := range []string{"v2", "v3", "v4"} {
		renameWrite(t, dir, "reviews.yaml", vs("reviews", subset))
		waitFor(t, ch, "reviews to route to "+subset, func(s Snapshot) bool { return subsetOf(t, s, "reviews") == subset })
	}

	// vim with backupcopy=no: the old file is renamed away, a new one
	// written, and the backup deleted.
	path := filepath.Join(dir, "reviews.yaml")
	if err := os.Rename(path, path+"~"); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "reviews.yaml", vs("reviews", "v5"))
	if err := os.Remove(path + "~"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "reviews to route to v5", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v5" })
}

func TestRunWatchesNewSubfolders(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "existing/reviews.yaml", vs("reviews", "v1"))
	s := newSource(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	ch := run(t, s)

	// A file in a folder that existed before Run.
	write(t, dir, "existing/ratings.yaml", vs("ratings", "v1"))
	waitFor(t, ch, "ratings", func(s Snapshot) bool { return find(s, config.KindVirtualService, "default", "ratings") != nil })

	// A new folder tree, with a file created at once.
	write(t, dir, "new/deeper/details.yaml", vs("details", "v1"))
	waitFor(t, ch, "details", func(s Snapshot) bool { return find(s, config.KindVirtualService, "default", "details") != nil })

	// Later edits inside the new folder are seen too: it is watched.
	write(t, dir, "new/deeper/details.yaml", vs("details", "v2"))
	waitFor(t, ch, "details v2", func(s Snapshot) bool { return subsetOf(t, s, "details") == "v2" })
	write(t, dir, "new/deeper/productpage.yaml", vs("productpage", "v1"))
	waitFor(t, ch, "productpage", func(s Snapshot) bool {
		return find(s, config.KindVirtualService, "default", "productpage") != nil
	})

	// Removing the folder removes its resources.
	if err := os.RemoveAll(filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "the folder's resources to go", func(s Snapshot) bool {
		return find(s, config.KindVirtualService, "default", "details") == nil &&
			find(s, config.KindVirtualService, "default", "productpage") == nil &&
			find(s, config.KindVirtualService, "default", "reviews") != nil
	})

	// A folder made again with the same name is watched again.
	if err := os.MkdirAll(filepath.Join(dir, "new", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "new/deeper/details.yaml", vs("details", "v3"))
	waitFor(t, ch, "details v3", func(s Snapshot) bool { return subsetOf(t, s, "details") == "v3" })
	write(t, dir, "new/deeper/details.yaml", vs("details", "v4"))
	waitFor(t, ch, "details v4", func(s Snapshot) bool { return subsetOf(t, s, "details") == "v4" })
}

func TestDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", vs("reviews", "v1"))
	write(t, dir, "b.yaml", vs("reviews", "v2")+"---\n"+vs("ratings", "v1"))
	s := newSource(t, dir)
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	// b.yaml comes later by path, so its reviews is the one reported and
	// ignored; its other resource is admitted on its own.
	if got := subsetOf(t, snap, "reviews"); got != "v1" {
		t.Errorf("reviews routes to %q, want a.yaml's v1", got)
	}
	if subsetOf(t, snap, "ratings") != "v1" {
		t.Error("b.yaml's ratings not applied beside its duplicate")
	}
	if !hasError(snap, "b.yaml", "metadata.name", "a.yaml") {
		t.Errorf("duplicate not reported against b.yaml: %v", snap.Errors)
	}

	ch := run(t, s)

	// Removing the duplicate lets b.yaml in.
	write(t, dir, "b.yaml", vs("ratings", "v1"))
	snap = waitFor(t, ch, "b.yaml to apply", func(s Snapshot) bool {
		return find(s, config.KindVirtualService, "default", "ratings") != nil
	})
	if len(snap.Errors) != 0 || subsetOf(t, snap, "reviews") != "v1" {
		t.Errorf("errors %v, reviews %q", snap.Errors, subsetOf(t, snap, "reviews"))
	}

	// An edit to b.yaml that duplicates a.yaml: the duplicate is kept
	// out, the rest of the edit applies.
	write(t, dir, "b.yaml", vs("ratings", "v2")+"---\n"+vs("reviews", "v9"))
	snap = waitFor(t, ch, "the duplicate to be reported", func(s Snapshot) bool { return len(s.Errors) > 0 })
	if !hasError(snap, "b.yaml", "metadata.name", "VirtualService default/reviews is already defined") {
		t.Errorf("errors: %v", snap.Errors)
	}
	if subsetOf(t, snap, "ratings") != "v2" || subsetOf(t, snap, "reviews") != "v1" {
		t.Errorf("ratings %q reviews %q, want b.yaml's v2 and a.yaml's v1", subsetOf(t, snap, "ratings"), subsetOf(t, snap, "reviews"))
	}

	// Deleting a.yaml resolves it: b.yaml's current content applies.
	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, ch, "b.yaml's edit to apply", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v9" })
	if len(snap.Errors) != 0 || subsetOf(t, snap, "ratings") != "v2" {
		t.Errorf("errors %v, ratings %q", snap.Errors, subsetOf(t, snap, "ratings"))
	}
}

func TestDuplicateInOneFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", vs("reviews", "v1")+"---\n"+vs("reviews", "v2"))
	snap, err := newSource(t, dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Resources) != 0 || !hasError(snap, "a.yaml", "metadata.name", "twice") {
		t.Errorf("resources %v errors %v", snap.Resources, snap.Errors)
	}
}

func TestEarlierFileTakesOverAKey(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "b.yaml", vs("reviews", "v2")+"---\n"+vs("ratings", "v1"))
	s := newSource(t, dir)
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	ch := run(t, s)

	// a.yaml comes first by path, so its definition wins; b.yaml keeps
	// its other resources and is told its duplicate is ignored.
	write(t, dir, "a.yaml", vs("reviews", "v1"))
	snap := waitFor(t, ch, "a.yaml's reviews", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v1" })
	if subsetOf(t, snap, "ratings") != "v1" {
		t.Errorf("b.yaml's ratings lost: %v", snap.Resources)
	}
	if !hasError(snap, "b.yaml", "metadata.name", "ignored") {
		t.Errorf("errors: %v", snap.Errors)
	}

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, ch, "b.yaml's reviews back", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v2" })
	if len(snap.Errors) != 0 {
		t.Errorf("errors: %v", snap.Errors)
	}
}

// Kubernetes mounts a ConfigMap as symbolic links into a hidden folder,
// and updates it by swapping the "..data" link.
func TestRunConfigMapStyleUpdates(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "..v1/reviews.yaml", vs("reviews", "v1"))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "reviews.yaml"), filepath.Join(dir, "reviews.yaml")); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, dir)
	snap, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if subsetOf(t, snap, "reviews") != "v1" || len(snap.Resources) != 1 {
		t.Fatalf("load: %v %v", snap.Resources, snap.Errors)
	}
	ch := run(t, s)

	write(t, dir, "..v2/reviews.yaml", vs("reviews", "v2"))
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	snap = waitFor(t, ch, "reviews v2", func(s Snapshot) bool { return subsetOf(t, s, "reviews") == "v2" })
	if len(snap.Errors) != 0 || len(snap.Resources) != 1 {
		t.Errorf("after update: %v %v", snap.Resources, snap.Errors)
	}
}

// Run only reports changes: it neither waits for quiet nor reads the
// folder, so the caller's debounce is the only one, and the folder is read
// once, when the caller loads it.
func TestRunOnlyNotifies(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "reviews.yaml", vs("reviews", "v1"))
	s := newSource(t, dir)
	first := load(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, changed) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-changed // the watch is in place

	for i := 2; i <= 4; i++ {
		write(t, dir, "reviews.yaml", vs("reviews", fmt.Sprintf("v%d", i)))
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no change notification")
		}
	}
	s.mu.Lock()
	version := s.snap.Version
	s.mu.Unlock()
	if version != first.Version {
		t.Errorf("Run read the folder itself: version %d, was %d", version, first.Version)
	}
	snap := load(t, s)
	if snap.Version != first.Version+1 || subsetOf(t, snap, "reviews") != "v4" {
		t.Errorf("one Load after three edits: version %d (was %d), subset %s", snap.Version, first.Version, subsetOf(t, snap, "reviews"))
	}
}
