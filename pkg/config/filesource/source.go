// Package filesource reads sluice's configuration from a folder of YAML
// files and follows it as files change.
//
// Each file is decoded with config.Decode and every resource is checked
// with config.Validate. Resources are admitted one by one, as Istio's
// webhook and kubectl apply admit each object on its own: in a file with
// an invalid document, the valid resources beside it apply, and the
// invalid one keeps the last version of it that was good (a resource that
// was never good contributes nothing). A document that cannot even be
// attributed to a resource (broken YAML, no kind or name) leaves every
// resource the file defined before and does not define now at its last
// good version, and says so; a resource removed from a file that
// otherwise reads is removed. Problems are reported in the Snapshot until
// fixed. One bad edit therefore never takes down configuration that was
// working.
//
// The Source does not debounce: Run only reports that something changed,
// cheaply, and the caller (the control plane, which owns the one debounce
// of a push) calls Load to read the folder once per push.
package filesource

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// MaxFiles is the most configuration files a folder may hold; files past
// it, in path order, are reported and not read.
const MaxFiles = 10000

// Options configure a Source.
type Options struct {
	// Dir is the folder to read, recursively.
	Dir string
	// DefaultNamespace applies to resources without metadata.namespace;
	// "default" when empty.
	DefaultNamespace string
	// Logf, when set, receives progress and problems.
	Logf func(format string, args ...any)
	// Warnf, when set, receives what Istio accepts with a warning (the
	// resource applies); Logf when unset.
	Warnf func(format string, args ...any)
}

// Snapshot is the complete set of good resources at one moment, plus the
// errors that are currently keeping some edits out.
type Snapshot struct {
	// Resources are sorted with config.SortResources.
	Resources []*config.Resource
	// NotEnforced are the resources of recognised kinds that sluice
	// accepts but does not enforce yet, in file order.
	NotEnforced []config.NotEnforced
	// Errors are the problems currently rejected, each naming the file,
	// document, resource and field.
	Errors config.Errors
	// Version increases with every new snapshot.
	Version uint64
	// Mesh is the MeshConfig the source holds (the kube source's istio
	// ConfigMap), nil when it holds none; the file source never sets it.
	Mesh *meshv1alpha1.MeshConfig
}

// Source follows a folder of configuration files.
type Source struct {
	opts     Options
	maxFiles int // MaxFiles; tests lower it

	mu      sync.Mutex
	files   map[string]*fileState // by slash-separated path relative to Dir
	limit   config.Errors         // about files past MaxFiles
	snap    Snapshot
	watch   func(dir string) // adds a watch on dir while Run is watching
	running bool
	// forced are the paths Run saw events for since the last Load; they
	// are re-read even if size and time look unchanged.
	forced map[string]bool
	// created is when each key was first seen (Resource.Created), kept
	// while the key exists so edits keep a resource's age.
	created map[config.Key]int64
}

// fileState is what the Source knows of one file.
type fileState struct {
	display string // the path used in errors: Dir joined with the relative path
	size    int64
	modTime time.Time
	hash    [sha256.Size]byte
	read    bool // size, modTime and hash describe the current content

	// errs are the problems of the current content.
	errs config.Errors
	// good is, per resource, the last version this file defined that was
	// admitted; it is what the file contributes.
	good map[config.Key]*config.Resource
	// notEnforced are the current content's recognised kinds that sluice
	// does not enforce.
	notEnforced []config.NotEnforced
}

// New returns a Source for opts.Dir. Nothing is read until Load or Run.
func New(opts Options) (*Source, error) {
	if opts.Dir == "" {
		return nil, errors.New("filesource: Dir is required")
	}
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Warnf == nil {
		opts.Warnf = opts.Logf
	}
	return &Source{opts: opts, maxFiles: MaxFiles, files: map[string]*fileState{}, forced: map[string]bool{}}, nil
}

// Load reads the folder (only the files that changed since the last Load
// are decoded again) and returns the resulting snapshot; its Version
// moves only when something changed. Its error is only for a folder that
// cannot be read at all; problems with files are in Snapshot.Errors.
func (s *Source) Load() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	forced := s.forced
	s.forced = map[string]bool{}
	if err := s.rescan(forced); err != nil {
		return s.snap, err
	}
	return s.snap, nil
}

// Run watches the folder, including subfolders as they appear, and sends
// on changed, without blocking, after every change seen: a full channel
// already says "changed", so events coalesce for free. It sends once when
// the watch is in place, so nothing changed between an earlier Load and
// Run is missed. The caller debounces and calls Load. Run returns nil
// when ctx ends, or an error if the folder cannot be watched.
func (s *Source) Run(ctx context.Context, changed chan<- struct{}) error {
	w, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return fmt.Errorf("filesource: watch %s: %w", s.opts.Dir, err)
	}
	defer w.Close()

	// watched is guarded by s.mu: addWatch runs from rescan, which may
	// also be called by Load on another goroutine.
	watched := map[string]bool{}
	addWatch := func(dir string) {
		if watched[dir] {
			return
		}
		if err := w.Add(dir); err != nil {
			s.opts.Logf("config: cannot watch %s: %v", dir, err)
			return
		}
		watched[dir] = true
	}

	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("filesource: Run is already running")
	}
	s.running = true
	s.watch = addWatch
	if err := w.Add(s.opts.Dir); err != nil {
		s.watch, s.running = nil, false
		s.mu.Unlock()
		return fmt.Errorf("filesource: watch %s: %w", s.opts.Dir, err)
	}
	watched[s.opts.Dir] = true
	s.watchTree(s.opts.Dir)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.watch, s.running = nil, false
		s.mu.Unlock()
	}()

	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("filesource: watcher closed")
			}
			s.event(ev, w, watched)
			notify()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("filesource: watcher closed")
			}
			s.opts.Logf("config: watching %s: %v; re-reading the folder", s.opts.Dir, err)
			notify()
		}
	}
}

// event notes one fsnotify event: new folders are watched, removed ones
// forgotten (so a folder made again with the same name is watched again),
// and the path is re-read at the next Load.
func (s *Source) event(ev fsnotify.Event, w *fsnotify.Watcher, watched map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Has(fsnotify.Create) {
		if info, err := os.Stat(ev.Name); err == nil && info.IsDir() && !ignoredName(filepath.Base(ev.Name)) {
			s.watchTree(ev.Name)
		}
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		for dir := range watched {
			if dir == ev.Name || strings.HasPrefix(dir, ev.Name+string(filepath.Separator)) {
				_ = w.Remove(dir)
				delete(watched, dir)
			}
		}
	}
	if rel, err := filepath.Rel(s.opts.Dir, ev.Name); err == nil {
		s.forced[filepath.ToSlash(rel)] = true
	}
}

// watchTree adds watches on dir and the folders under it. Callers hold s.mu.
func (s *Source) watchTree(dir string) {
	if s.watch == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if path != dir && ignoredName(d.Name()) {
				return filepath.SkipDir
			}
			s.watch(path)
		}
		return nil
	})
}

// ignoredName reports whether a file or folder name is hidden or an
// editor's temporary file.
func ignoredName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") ||
		strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".swp") ||
		strings.HasSuffix(name, ".swx")
}

func isConfigFile(name string) bool {
	if ignoredName(name) {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// rescan walks the folder, re-reads the files that changed or that are
// in forced, and makes a new snapshot if anything changed. Callers hold
// s.mu.
func (s *Source) rescan(forced map[string]bool) error {
	root := s.opts.Dir
	if _, err := os.ReadDir(root); err != nil {
		return fmt.Errorf("read config folder: %w", err)
	}
	var paths []string
	var unreadable []string // folders that could not be listed
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if path == root {
			if err != nil {
				return err
			}
			return nil
		}
		rel, relErr := filepath.Rel(root, path)
		if relErr != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			if d != nil && d.IsDir() {
				s.opts.Logf("config: cannot read folder %s: %v", path, err)
				unreadable = append(unreadable, rel+"/")
			}
			return nil
		}
		if ignoredName(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if s.watch != nil {
				s.watch(path)
			}
			return nil
		}
		if isConfigFile(d.Name()) {
			paths = append(paths, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read config folder: %w", err)
	}
	sort.Strings(paths)

	changed := s.snap.Version == 0
	var limit config.Errors
	present := make(map[string]bool, len(paths))
	for i, rel := range paths {
		present[rel] = true
		f := s.files[rel]
		if f == nil {
			f = &fileState{display: filepath.Join(root, filepath.FromSlash(rel))}
			s.files[rel] = f
			changed = true
		}
		if i >= s.maxFiles {
			if len(f.errs) == 0 || f.read {
				changed = true
			}
			e := &config.Error{Source: config.Source{File: f.display},
				Err: fmt.Errorf("the folder has %d configuration files, more than the limit of %d; this one is not read", len(paths), s.maxFiles)}
			f.read, f.errs = false, config.Errors{e}
			limit = append(limit, e)
			continue
		}
		if s.refresh(f, forced[rel]) {
			changed = true
		}
	}
	for rel := range s.files {
		if present[rel] || underAny(rel, unreadable) {
			continue
		}
		delete(s.files, rel)
		changed = true
	}
	if len(limit) > 0 {
		s.opts.Logf("config: %d files past the limit of %d are not read", len(limit), s.maxFiles)
	}
	s.limit = limit
	if changed {
		s.assemble()
	}
	return nil
}

func underAny(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

// refresh re-reads f if it may have changed and reports whether its
// content did.
func (s *Source) refresh(f *fileState, force bool) bool {
	info, err := os.Stat(f.display)
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		return f.setProblem(fmt.Errorf("cannot read: %w", err))
	}
	if f.read && !force && info.Size() == f.size && info.ModTime().Equal(f.modTime) {
		return false
	}
	if info.Size() > config.MaxFileBytes {
		f.size, f.modTime = info.Size(), info.ModTime()
		return f.setProblem(fmt.Errorf("file is %d bytes, more than the limit of %d", info.Size(), config.MaxFileBytes))
	}
	data, err := readLimited(f.display, config.MaxFileBytes)
	if err != nil {
		return f.setProblem(fmt.Errorf("cannot read: %w", err))
	}
	hash := sha256.Sum256(data)
	if f.read && hash == f.hash {
		f.size, f.modTime = info.Size(), info.ModTime()
		return false
	}
	f.size, f.modTime, f.hash, f.read = info.Size(), info.ModTime(), hash, true
	s.parse(f, data)
	return true
}

// setProblem records a problem that keeps the file from being read, and
// reports whether that changed what is known of it. What the file
// contributed stays: nothing of it could be attributed.
func (f *fileState) setProblem(err error) bool {
	e := &config.Error{Source: config.Source{File: f.display}, Err: err}
	same := !f.read && len(f.errs) == 1 && f.errs[0].Error() == e.Error()
	f.read, f.errs = false, config.Errors{e}
	return !same
}

func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("file is more than the limit of %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// parse decodes and validates the content of f and admits its resources
// one by one (see the package comment).
func (s *Source) parse(f *fileState, data []byte) {
	res := config.Decode(data, config.DecodeOptions{File: f.display, DefaultNamespace: s.opts.DefaultNamespace})
	errs := append(config.Errors(nil), res.Errors...)
	rejected := map[config.Key]bool{}
	var unattributed []*config.Error
	for _, e := range res.Errors {
		if e.Key.Kind == "" || e.Key.Name == "" {
			unattributed = append(unattributed, e)
		} else {
			rejected[e.Key] = true
		}
	}
	first := map[config.Key]*config.Resource{}
	for _, r := range res.Resources {
		if prev, dup := first[r.Key()]; dup {
			rejected[r.Key()] = true
			errs = append(errs, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
				Err: fmt.Errorf("%s is defined twice in this file (also document %d)", r.Key(), prev.Source.Doc)})
			continue
		}
		first[r.Key()] = r
	}
	admitted := map[config.Key]*config.Resource{}
	for _, r := range res.Resources {
		k := r.Key()
		if first[k] != r || rejected[k] {
			continue
		}
		for _, w := range config.Warnings(r) {
			s.opts.Warnf("config: WARNING %s", w)
		}
		problems := append(config.Validate(r), config.Unsupported(r)...)
		if len(problems) > 0 {
			errs = append(errs, problems...)
			rejected[k] = true
			continue
		}
		admitted[k] = r
	}
	kept := keepLastGood(f.good, admitted, rejected, len(unattributed) > 0)
	if len(kept.unattributed) > 0 {
		errs = append(errs, &config.Error{Source: unattributed[0].Source, Err: fmt.Errorf(
			"this document cannot be attributed to a resource, so what this file defined before and does not define now stays at its last good version: %s",
			strings.Join(kept.unattributed, ", "))})
	}
	for _, k := range kept.rejected {
		s.opts.Logf("config: %s: %s rejected; its previous version stays in force", f.display, k)
	}
	for _, skipped := range res.Skipped {
		s.opts.Logf("config: skipped %s", skipped)
	}
	f.errs, f.good, f.notEnforced = errs, admitted, res.NotEnforced
	if len(errs) > 0 {
		s.opts.Logf("config: %s: %d resources admitted, problems:\n%v", f.display, len(admitted), errs)
	}
}

// keptKeys are the keys keepLastGood carried over, by why.
type keptKeys struct {
	rejected     []string // the new version was invalid
	unattributed []string // absent, but a document could not be attributed
}

// keepLastGood adds to admitted the previous good version of each
// resource whose new version was rejected, and, when some document could
// not be attributed to any resource, of each resource not in the new
// content: it may be in the unreadable document.
func keepLastGood(prev, admitted map[config.Key]*config.Resource, rejected map[config.Key]bool, unattributed bool) keptKeys {
	var kept keptKeys
	for k, r := range prev {
		if _, ok := admitted[k]; ok {
			continue
		}
		switch {
		case rejected[k]:
			kept.rejected = append(kept.rejected, k.String())
		case unattributed:
			kept.unattributed = append(kept.unattributed, k.String())
		default:
			continue
		}
		admitted[k] = r
	}
	sort.Strings(kept.rejected)
	sort.Strings(kept.unattributed)
	return kept
}

// assemble makes a new snapshot from the files' states. Files are taken
// in path order; a resource already defined by an earlier file is an
// error against the later one, whose definition is ignored while the
// earlier one stands. Callers hold s.mu.
func (s *Source) assemble() {
	paths := make([]string, 0, len(s.files))
	for rel := range s.files {
		paths = append(paths, rel)
	}
	sort.Strings(paths)

	owner := map[config.Key]*config.Resource{}
	var resources []*config.Resource
	var notEnforced []config.NotEnforced
	errs := append(config.Errors(nil), s.limit...)
	for _, rel := range paths {
		f := s.files[rel]
		if !underLimit(f, s.limit) {
			errs = append(errs, f.errs...)
		}
		notEnforced = append(notEnforced, f.notEnforced...)
		for _, r := range inDocumentOrder(f.good) {
			if first := owner[r.Key()]; first != nil {
				errs = append(errs, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
					Err: fmt.Errorf("%s is already defined in %s, which comes first by path; this definition is ignored until the duplicate is removed", r.Key(), first.Source)})
				continue
			}
			owner[r.Key()] = r
			resources = append(resources, r)
		}
	}
	s.stampCreation(resources)
	config.SortResources(resources)
	s.snap = Snapshot{Resources: resources, NotEnforced: notEnforced, Errors: errs, Version: s.snap.Version + 1}
	s.opts.Logf("config: version %d: %d resources from %d files, %d problems, %d not enforced",
		s.snap.Version, len(resources), len(paths), len(errs), len(notEnforced))
}

// inDocumentOrder lists a file's resources by document, then key.
func inDocumentOrder(m map[config.Key]*config.Resource) []*config.Resource {
	out := make([]*config.Resource, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *config.Resource) int {
		return cmp.Or(cmp.Compare(a.Source.Doc, b.Source.Doc), config.CompareKeys(a.Key(), b.Key()))
	})
	return out
}

// underLimit reports whether f's errors are already among the limit
// errors, so they are not listed twice.
func underLimit(f *fileState, limit config.Errors) bool {
	return len(f.errs) == 1 && len(limit) > 0 && containsError(limit, f.errs[0])
}

func containsError(es config.Errors, e *config.Error) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// stampCreation gives each resource its creation time: its own
// creationTimestamp, else when this source first saw its key. Keys gone
// from the folder are forgotten, so a re-created resource is new.
func (s *Source) stampCreation(resources []*config.Resource) {
	if s.created == nil {
		s.created = map[config.Key]int64{}
	}
	now := time.Now().UnixNano()
	live := make(map[config.Key]bool, len(resources))
	for _, r := range resources {
		k := r.Key()
		live[k] = true
		if r.Created != 0 {
			if _, ok := s.created[k]; !ok {
				s.created[k] = r.Created
			}
			continue
		}
		t, ok := s.created[k]
		if !ok {
			now++ // first appearance in path order within one scan
			t = now
			s.created[k] = t
		}
		r.Created = t // r is not yet published: Created is 0 only on resources new from parse
	}
	for k := range s.created {
		if !live[k] {
			delete(s.created, k)
		}
	}
}
