// Package kubesource reads sluice's configuration from a Kubernetes API
// server and follows it with shared informers, as istiod's kube config
// controller does (pilot/pkg/config/kube/crdclient).
//
// Every object an informer holds becomes config resources exactly as a
// file document would: the object's JSON goes through config.Decode, then
// config.Warnings, config.Validate and config.Unsupported, with Source
// "kubernetes", so an error reads "kubernetes: VirtualService
// default/reviews: spec.http[0]...". Objects are admitted one by one: an
// invalid version of an object is reported in the snapshot's Errors and
// the object's last good version stays in force (a kube API server
// without Istio's validating webhook admits anything the CRD schema
// allows). A deleted object is removed.
//
// The informers re-list and re-watch by themselves after a watch error or
// an API server restart; their stores, and so the snapshot, keep the last
// state seen meanwhile.
//
// The MeshConfig is read from the ConfigMap istio-system/istio, key
// "mesh", as istiod reads it (pkg/config/mesh/kubemesh), and followed.
package kubesource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
)

// SourceName is config.Source.File of every resource from the cluster.
const SourceName = config.KubernetesSource

// Options configure a Source.
type Options struct {
	// RESTConfig reaches the API server (required).
	RESTConfig *rest.Config
	// SyncTimeout bounds the first Load's wait for every informer's
	// initial list (default 1 minute).
	SyncTimeout time.Duration
	// MeshNamespace and MeshConfigMap name the ConfigMap holding the
	// MeshConfig under key "mesh" (default istio-system and
	// MeshConfigMapName(Revision), as istiod's).
	MeshNamespace, MeshConfigMap string
	// Revision is the control plane's revision: Istio and Gateway API
	// objects labelled istio.io/rev with another value are not read
	// (config.InRevision, istiod's crdclient LabelsInRevision). "" reads
	// every object; a control plane without --revision passes "default",
	// as istiod's REVISION env defaults to in Istio's chart.
	Revision string
	// Logf, when set, receives progress and problems.
	Logf func(format string, args ...any)
	// Warnf, when set, receives what Istio accepts with a warning; Logf
	// when unset.
	Warnf func(format string, args ...any)
}

// MeshConfigMapName is the ConfigMap a control plane of revision reads its
// MeshConfig from: istio for the default revision, else istio-<revision>
// (istiod's getMeshConfigMapName, pilot/pkg/bootstrap/mesh.go).
func MeshConfigMapName(revision string) string {
	if revision == "" || revision == "default" {
		return "istio"
	}
	return "istio-" + revision
}

// Source follows a Kubernetes API server.
type Source struct {
	opts Options
	dyn  dynamic.Interface
	dc   discovery.DiscoveryInterface

	startOnce sync.Once
	startErr  error
	stop      context.CancelFunc
	synced    []cache.InformerSynced

	mu      sync.Mutex
	objects map[objKey]*objState
	mesh    meshState
	dirty   bool
	snap    filesource.Snapshot
	notify  chan<- struct{} // set while Run runs
	running bool
}

// New returns a Source for opts.RESTConfig. Nothing is read until Load
// or Run.
func New(opts Options) (*Source, error) {
	if opts.RESTConfig == nil {
		return nil, errors.New("kubesource: RESTConfig is required")
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = time.Minute
	}
	if opts.MeshNamespace == "" {
		opts.MeshNamespace = "istio-system"
	}
	if opts.MeshConfigMap == "" {
		opts.MeshConfigMap = MeshConfigMapName(opts.Revision)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Warnf == nil {
		opts.Warnf = opts.Logf
	}
	cfg := rest.CopyConfig(opts.RESTConfig)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "sluice-control"
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubesource: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubesource: %w", err)
	}
	return &Source{opts: opts, dyn: dyn, dc: dc, objects: map[objKey]*objState{}}, nil
}

// Load returns the current snapshot, after waiting (once, on the first
// call) for every informer's initial list. Its Version moves only when
// something changed. Its error is only for an API server that could not
// be reached at start; problems with objects are in Snapshot.Errors.
func (s *Source) Load() (filesource.Snapshot, error) {
	if err := s.start(); err != nil {
		return filesource.Snapshot{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty || s.snap.Version == 0 {
		s.assemble()
	}
	return s.snap, nil
}

// Run sends on changed, without blocking, after every informer event that
// changes what an object contributes (config, errors, not-enforced
// reports; the caller debounces and calls Load), and once when it starts. It returns
// nil when ctx ends, which also stops the informers.
func (s *Source) Run(ctx context.Context, changed chan<- struct{}) error {
	if err := s.start(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("kubesource: Run is already running")
	}
	s.running, s.notify = true, changed
	s.mu.Unlock()
	s.signal()
	<-ctx.Done()
	s.mu.Lock()
	s.running, s.notify = false, nil
	s.mu.Unlock()
	s.Close()
	return nil
}

// Close stops the informers.
func (s *Source) Close() {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// signal tells Run's caller that something changed, without blocking: a
// full channel already says so.
func (s *Source) signal() {
	s.mu.Lock()
	ch := s.notify
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// start discovers the served kinds, starts one informer per kind and waits
// for their first lists, once.
func (s *Source) start() error {
	s.startOnce.Do(func() { s.startErr = s.startInformers() })
	return s.startErr
}

func (s *Source) startInformers() error {
	// Discovery is retried for SyncTimeout: an API server still starting
	// (or briefly away) is waited for, as the informers' first lists are.
	deadline := time.Now().Add(s.opts.SyncTimeout)
	found, missing, err := resolve(s.dc)
	for err != nil && time.Now().Before(deadline) {
		s.opts.Logf("config: kubernetes: %v; retrying", err)
		time.Sleep(time.Second)
		found, missing, err = resolve(s.dc)
	}
	if err != nil {
		return fmt.Errorf("kubesource: %w", err)
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, k := range missing {
			names[i] = groupResource(k)
		}
		s.opts.Logf("config: kubernetes: not served by the API server (CRDs not installed), watched once installed: %v", names)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.stop = cancel
	s.mu.Unlock()
	for _, k := range found {
		inf := s.newInformer(k)
		s.synced = append(s.synced, inf.HasSynced)
		go inf.Run(ctx.Done())
	}
	s.watchCRDs(ctx, missing)
	mesh := s.newMeshInformer()
	s.synced = append(s.synced, mesh.HasSynced)
	go mesh.Run(ctx.Done())

	syncCtx, done := context.WithTimeout(ctx, s.opts.SyncTimeout)
	defer done()
	if !cache.WaitForCacheSync(syncCtx.Done(), s.synced...) {
		cancel()
		return fmt.Errorf("kubesource: the API server's objects were not all listed within %s", s.opts.SyncTimeout)
	}
	s.opts.Logf("config: kubernetes: watching %d kinds", len(found))
	return nil
}

// assemble makes a new snapshot from the objects' states, in key order. A
// config key defined by two objects (one kind served under two names) is
// an error against the later one. Callers hold s.mu.
func (s *Source) assemble() {
	keys := make([]objKey, 0, len(s.objects))
	for k := range s.objects {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	owner := map[config.Key]bool{}
	var resources []*config.Resource
	var notEnforced []config.NotEnforced
	var errs config.Errors
	if s.mesh.err != nil {
		errs = append(errs, s.mesh.err)
	}
	for _, k := range keys {
		o := s.objects[k]
		errs = append(errs, o.errs...)
		notEnforced = append(notEnforced, o.notEnforced...)
		for _, r := range o.good {
			if owner[r.Key()] {
				errs = append(errs, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
					Err: fmt.Errorf("%s is defined twice in the cluster; this definition (%s) is ignored", r.Key(), k)})
				continue
			}
			owner[r.Key()] = true
			resources = append(resources, r)
		}
	}
	config.SortResources(resources)
	s.snap = filesource.Snapshot{Resources: resources, NotEnforced: notEnforced, Errors: errs,
		Version: s.snap.Version + 1, Mesh: s.mesh.good}
	s.dirty = false
	s.opts.Logf("config: kubernetes version %d: %d resources from %d objects, %d problems, %d not enforced",
		s.snap.Version, len(resources), len(keys), len(errs), len(notEnforced))
}

// meshState is the MeshConfig read from the cluster.
type meshState struct {
	good *meshv1alpha1.MeshConfig // last good; nil: no ConfigMap seen
	err  *config.Error
	rv   string
}
