// Package filesource reads sluice's configuration from a folder of YAML
// files and follows it as files change.
//
// Each file is decoded with config.Decode and every resource is checked
// with config.Validate. A file with any problem does not take effect:
// the last version of it that was good stays in force (a file that was
// never good contributes nothing) and the problems are reported in the
// Snapshot until the file is fixed or deleted. One bad edit therefore
// never takes down configuration that was working.
package filesource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

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
	// Debounce is the quiet period after a change before the folder is
	// re-read, so that an editor's several writes make one snapshot;
	// 100ms when zero.
	Debounce time.Duration
	// Logf, when set, receives progress and problems.
	Logf func(format string, args ...any)
}

// Snapshot is the complete set of good resources at one moment, plus the
// errors that are currently keeping some edits out.
type Snapshot struct {
	// Resources are sorted with config.SortResources.
	Resources []*config.Resource
	// Errors are the problems currently rejected, each naming the file,
	// document, resource and field.
	Errors config.Errors
	// Version increases with every new snapshot.
	Version uint64
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

	// valid says the current content decoded and validated cleanly;
	// candidate then holds its resources.
	valid     bool
	candidate []*config.Resource
	// errs are the problems of the current content.
	errs config.Errors

	// good is the last content that took effect, if any did; current
	// says it is the current content.
	good    []*config.Resource
	hasGood bool
	current bool
}

// New returns a Source for opts.Dir. Nothing is read until Load or Run.
func New(opts Options) (*Source, error) {
	if opts.Dir == "" {
		return nil, errors.New("filesource: Dir is required")
	}
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Source{opts: opts, maxFiles: MaxFiles, files: map[string]*fileState{}}, nil
}

// Load reads the whole folder and returns the resulting snapshot. Its
// error is only for a folder that cannot be read at all; problems with
// files are in Snapshot.Errors.
func (s *Source) Load() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rescan(nil); err != nil {
		return Snapshot{}, err
	}
	return s.snap, nil
}

// Run watches the folder, including subfolders as they appear, and sends
// a new Snapshot on out after each change, once the folder has been quiet
// for Options.Debounce. If Load has not been called, the first snapshot
// is sent as soon as the folder is read. When out is not ready, only the
// newest snapshot is kept for it. Run returns nil when ctx ends, or an
// error if the folder cannot be watched.
func (s *Source) Run(ctx context.Context, out chan<- Snapshot) error {
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
	sent := s.snap.Version
	// Watch before reading, so no change falls between the two.
	if err := w.Add(s.opts.Dir); err != nil {
		s.watch, s.running = nil, false
		s.mu.Unlock()
		return fmt.Errorf("filesource: watch %s: %w", s.opts.Dir, err)
	}
	watched[s.opts.Dir] = true
	err = s.rescan(nil)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.watch, s.running = nil, false
		s.mu.Unlock()
	}()
	if err != nil {
		s.opts.Logf("config: %v", err)
	}

	var (
		pending   *Snapshot
		outCh     chan<- Snapshot
		timer     = time.NewTimer(time.Hour)
		timerC    <-chan time.Time
		firstSeen time.Time
		forced    = map[string]bool{}
	)
	timer.Stop()
	maxWait := 10 * s.opts.Debounce
	offer := func() {
		s.mu.Lock()
		snap := s.snap
		s.mu.Unlock()
		if snap.Version > sent {
			pending, outCh = &snap, out
		}
	}
	schedule := func() {
		now := time.Now()
		if timerC == nil {
			firstSeen = now
		}
		wait := s.opts.Debounce
		if latest := firstSeen.Add(maxWait); now.Add(wait).After(latest) {
			wait = max(latest.Sub(now), 0)
		}
		timer.Reset(wait)
		timerC = timer.C
	}
	offer()

	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case outCh <- derefSnapshot(pending):
			sent = pending.Version
			pending, outCh = nil, nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("filesource: watcher closed")
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() && !ignoredName(filepath.Base(ev.Name)) {
					s.mu.Lock()
					s.watchTree(ev.Name)
					s.mu.Unlock()
				}
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// Forget the folder and those under it, so that a folder
				// made again with the same name is watched again.
				s.mu.Lock()
				for dir := range watched {
					if dir == ev.Name || strings.HasPrefix(dir, ev.Name+string(filepath.Separator)) {
						_ = w.Remove(dir)
						delete(watched, dir)
					}
				}
				s.mu.Unlock()
			}
			if rel, err := filepath.Rel(s.opts.Dir, ev.Name); err == nil {
				forced[filepath.ToSlash(rel)] = true
			}
			schedule()
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("filesource: watcher closed")
			}
			s.opts.Logf("config: watching %s: %v; re-reading the folder", s.opts.Dir, err)
			schedule()
		case <-timerC:
			timerC = nil
			s.mu.Lock()
			err := s.rescan(forced)
			s.mu.Unlock()
			forced = map[string]bool{}
			if err != nil {
				s.opts.Logf("config: %v; keeping the configuration read before", err)
			}
			offer()
		}
	}
}

func derefSnapshot(p *Snapshot) Snapshot {
	if p == nil {
		return Snapshot{}
	}
	return *p
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
			if f.valid || len(f.errs) == 0 || f.read {
				changed = true
			}
			e := &config.Error{Source: config.Source{File: f.display},
				Err: fmt.Errorf("the folder has %d configuration files, more than the limit of %d; this one is not read", len(paths), s.maxFiles)}
			f.read, f.valid, f.candidate, f.errs, f.current = false, false, nil, config.Errors{e}, false
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
// reports whether that changed what is known of it.
func (f *fileState) setProblem(err error) bool {
	e := &config.Error{Source: config.Source{File: f.display}, Err: err}
	same := !f.read && !f.valid && len(f.errs) == 1 && f.errs[0].Error() == e.Error()
	f.read, f.valid, f.candidate, f.errs, f.current = false, false, nil, config.Errors{e}, false
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

// parse decodes and validates the content of f.
func (s *Source) parse(f *fileState, data []byte) {
	res := config.Decode(data, config.DecodeOptions{File: f.display, DefaultNamespace: s.opts.DefaultNamespace})
	errs := append(config.Errors(nil), res.Errors...)
	seen := map[config.Key]*config.Resource{}
	for _, r := range res.Resources {
		errs = append(errs, config.Validate(r)...)
		errs = append(errs, config.Unsupported(r)...)
		for _, w := range config.Warnings(r) {
			s.opts.Logf("config: WARNING %s", w)
		}
		if first, dup := seen[r.Key()]; dup {
			errs = append(errs, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
				Err: fmt.Errorf("%s is defined twice in this file (also document %d)", r.Key(), first.Source.Doc)})
		} else {
			seen[r.Key()] = r
		}
	}
	for _, skipped := range res.Skipped {
		s.opts.Logf("config: skipped %s", skipped)
	}
	f.errs = errs
	f.valid = len(errs) == 0
	f.candidate = nil
	f.current = false
	if f.valid {
		f.candidate = res.Resources
		return
	}
	kept := "it contributes nothing until fixed"
	if f.hasGood {
		kept = "its previous version stays in force"
	}
	s.opts.Logf("config: %s rejected (%s):\n%v", f.display, kept, errs)
}

// assemble makes a new snapshot from the files' states. Files are taken
// in path order; a resource already defined by an earlier file is an
// error against the later one, which keeps its last good version.
// Callers hold s.mu.
func (s *Source) assemble() {
	paths := make([]string, 0, len(s.files))
	for rel := range s.files {
		paths = append(paths, rel)
	}
	sort.Strings(paths)

	owner := map[config.Key]*config.Resource{}
	var resources []*config.Resource
	errs := append(config.Errors(nil), s.limit...)
	for _, rel := range paths {
		f := s.files[rel]
		if !underLimit(f, s.limit) {
			errs = append(errs, f.errs...)
		}
		reported := map[config.Key]bool{}
		duplicate := func(r *config.Resource, consequence string) {
			reported[r.Key()] = true
			first := owner[r.Key()]
			errs = append(errs, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
				Err: fmt.Errorf("%s is already defined in %s, which comes first by path; %s", r.Key(), first.Source, consequence)})
		}
		use := f.good
		if f.valid {
			conflict := false
			for _, r := range f.candidate {
				if owner[r.Key()] != nil {
					conflict = true
					var consequence string
					switch {
					case f.current:
						consequence = "this definition is ignored until the duplicate is removed"
					case f.hasGood:
						consequence = "this file's previous version stays in force until the duplicate is removed"
					default:
						consequence = "this file is not applied until the duplicate is removed"
					}
					duplicate(r, consequence)
				}
			}
			if !conflict {
				f.good, f.hasGood, f.current = f.candidate, true, true
				use = f.good
			}
		}
		for _, r := range use {
			if owner[r.Key()] != nil {
				if !reported[r.Key()] {
					duplicate(r, "this definition is ignored")
				}
				continue
			}
			owner[r.Key()] = r
			resources = append(resources, r)
		}
	}
	s.stampCreation(resources)
	config.SortResources(resources)
	s.snap = Snapshot{Resources: resources, Errors: errs, Version: s.snap.Version + 1}
	s.opts.Logf("config: version %d: %d resources from %d files, %d problems",
		s.snap.Version, len(resources), len(paths), len(errs))
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
		r.Created = t // r is not yet published: resources are new objects from parse
	}
	for k := range s.created {
		if !live[k] {
			delete(s.created, k)
		}
	}
}
