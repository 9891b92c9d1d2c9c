// Package controlplane is `sluice control`: it turns config from a source
// into push contexts, generates every connected proxy's xDS from them and
// serves it, debounced and versioned, with a status endpoint.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	"k8s.io/client-go/rest"

	"google.golang.org/grpc"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/config/mergesource"
	"github.com/sluice-mesh/sluice/pkg/dashboard"
	"github.com/sluice-mesh/sluice/pkg/jwks"
	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// Options configure the control plane.
type Options struct {
	// ConfigDir is a folder of config; with Kube it adds to the cluster's.
	ConfigDir string
	// Kube, when set, is the API server config is read from (kubesource),
	// MeshConfig included (ConfigMap istio-system/istio, which then wins
	// over Mesh).
	Kube        *rest.Config
	Mesh        *meshv1alpha1.MeshConfig
	XDSAddress  string
	HTTPAddress string
	Debounce    DebounceOptions
	// CADir keeps the mesh CA's files across restarts (empty: in memory);
	// it is watched, and re-read on SIGHUP, for root rotation.
	CADir string
	// Security configures certificate lifetimes, tokens and TLS.
	Security SecurityOptions
	// JwksCAPEM are CA certificates trusted for https jwksUris of
	// RequestAuthentications besides the system roots (--jwks-ca-file).
	JwksCAPEM []byte
	// Dashboard configures the mesh dashboard served at /dashboard/.
	Dashboard DashboardOptions
	// DisableVHDS sends delta xDS streams whole route configurations
	// instead of their virtual hosts as VHDS resources (--vhds=false).
	DisableVHDS bool
	// Injection serves the sidecar injection webhook when it has a
	// Kubernetes client (injection.go).
	Injection InjectionOptions
	// Revision is the control plane's revision (istio.io/rev; "" the
	// default): the cluster's config, and its Gateways to deploy, are
	// those of this revision (kubesource, pkg/kube/gwdeploy).
	Revision string
	// DisableValidationStatus turns off writing analysis messages into
	// the cluster's Istio objects' status.validationMessages.
	DisableValidationStatus bool
	// DisableGatewayDeployment turns off the provisioning of Gateways'
	// Deployments and Services (istiod's
	// PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER=false).
	DisableGatewayDeployment bool
	Logger                   *slog.Logger
}

// Controller runs the control plane.
type Controller struct {
	opts   Options
	log    *slog.Logger
	server *xdsserver.Server
	source mergesource.Source
	// mesh is the MeshConfig in force: the source's (the cluster's
	// ConfigMap) when it has one, else opts.Mesh.
	mesh atomic.Pointer[meshv1alpha1.MeshConfig]
	// baseMesh is --mesh-config's (or the default): in force when the
	// source has none.
	baseMesh *meshv1alpha1.MeshConfig
	// jwks fetches RequestAuthentication key sets (as istiod); a change
	// found by its refresh is a push request.
	jwks *jwks.Resolver
	// security is the CA, the token checks and the trust bundle watch.
	security *security

	push     atomic.Pointer[pushContext]
	pushes   atomic.Uint64
	requests chan PushRequest

	mu      sync.Mutex
	current filesource.Snapshot
	last    pushRecord
	// configRead is when the folder was last read, once all that read
	// found has been pushed (or it found nothing new).
	configRead time.Time
	// conflicts are generation's reports per proxy ID.
	conflicts map[string][]string
	// conflictCounts are, per proxy ID, the conflicts of the kinds istiod
	// counts in its pilot_conflict_* gauges.
	conflictCounts map[string]conflictCounts
	ready          atomic.Bool
	metrics        *metrics
	// dashboard is the mesh dashboard at /dashboard/ (status.go).
	dashboard *dashboard.Dashboard
	// analysis runs the analyzers after each config push (analysis.go).
	analysis *analyzer
	// statusWake tells the Gateway API status writer of a new push
	// (kubestatus.go).
	statusWake chan struct{}
	// validationWake tells the validationMessages writer of a finished
	// analysis (validationstatus.go).
	validationWake chan struct{}
}

// pushContext is a push context with its version as a number, which
// orders the snapshots made from it.
type pushContext struct {
	*model.PushContext
	n uint64
	// gen generates every proxy's config from this push, sharing what
	// proxies have in common (xdsgen.Generator).
	gen *xdsgen.Generator
	// resources are the config it was made from: the next push's change
	// set is computed against them.
	resources []*config.Resource
	// mesh is the MeshConfig it was made from: a new one is a full push.
	mesh *meshv1alpha1.MeshConfig
}

type pushRecord struct {
	Version  string        `json:"version"`
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration_ns"`
	Proxies  int           `json:"proxies"`
	Reasons  []string      `json:"reasons"`
	// ChangeStart is when the first change merged into this push was seen.
	ChangeStart time.Time `json:"change_start"`
}

// New prepares a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Mesh == nil {
		return nil, errors.New("control: no mesh config")
	}
	if opts.Debounce.Quiet == 0 {
		opts.Debounce = DebounceOptions{Quiet: 100 * time.Millisecond, MaxDelay: time.Second}
	}
	baseMesh := opts.Mesh
	src, err := newSource(&opts)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	sec, err := newSecurity(opts)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	c := &Controller{opts: opts, log: opts.Logger, source: src, requests: make(chan PushRequest, 64), security: sec,
		statusWake: make(chan struct{}, 1), validationWake: make(chan struct{}, 1)}
	c.mesh.Store(opts.Mesh)
	c.baseMesh = baseMesh
	c.metrics = newMetrics(c)
	c.analysis = newAnalyzer(opts.Mesh, opts.Logger)
	c.analysis.onDone = c.wakeValidation
	sec.metrics = c.metrics.ca
	c.jwks, err = jwks.New(jwks.Options{ExtraRootsPEM: opts.JwksCAPEM, Logger: opts.Logger,
		OnChange: func() { c.requests <- PushRequest{Full: true, Reasons: []string{"jwks"}, Start: time.Now()} }})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	c.server = xdsserver.New(xdsserver.Options{Versioned: c.generate, Endpoints: c.endpoints, Logger: opts.Logger, Metrics: c.metrics.xds,
		DisableVHDS: opts.DisableVHDS,
		Register:    []func(*grpc.Server){sec.register}, ServerOptions: sec.serverOptions(opts.XDSAddress, injectedXDSHost(opts.Injection))})
	if c.dashboard, err = newDashboard(c); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return c, nil
}

// Run loads config, serves xDS and status, and pushes on every change
// until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	readAt := time.Now()
	snap, err := c.source.Load()
	if err != nil {
		return fmt.Errorf("control: load %s: %w", c.sourceName(), err)
	}
	c.applySnapshot(snap)
	c.rebuild(PushRequest{Full: true, Reasons: []string{"startup"}, Start: time.Now()})
	c.mu.Lock()
	c.configRead = readAt
	c.mu.Unlock()
	c.ready.Store(true)

	xdsLis, err := net.Listen("tcp", c.opts.XDSAddress)
	if err != nil {
		return fmt.Errorf("control: xds listener: %w", err)
	}
	httpLis, err := net.Listen("tcp", c.opts.HTTPAddress)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("control: http listener: %w", err)
	}
	c.log.Info("control plane serving", "xds", xdsLis.Addr().String(), "http", httpLis.Addr().String(),
		"config", c.sourceName(), "resources", len(snap.Resources), "errors", len(snap.Errors))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 7)
	// changed carries the file source's raw change notifications; the
	// debounce below is the only one between an edit and a push.
	changed := make(chan struct{}, 1)
	go func() { errc <- c.server.Serve(ctx, xdsLis) }()
	go func() { errc <- c.serveHTTP(ctx, httpLis) }()
	go func() { errc <- c.source.Run(ctx, changed) }()
	go func() { errc <- c.security.watch(ctx) }()
	go func() { errc <- c.runInjection(ctx) }()
	go func() { errc <- c.runGatewayStatus(ctx) }()
	go func() { errc <- c.runGatewayDeployment(ctx) }()
	go debounce(ctx, c.requests, c.opts.Debounce, c.rebuild)
	go c.jwks.Run(ctx)
	go c.dashboard.Run(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-changed:
			select {
			case c.requests <- PushRequest{Full: true, Config: true, Reasons: []string{"config"}, Start: time.Now()}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// applySnapshot makes s the current config and reports, on every load,
// what it rejects and what it accepts without enforcing.
func (c *Controller) applySnapshot(s filesource.Snapshot) {
	c.mu.Lock()
	c.current = s
	c.mu.Unlock()
	c.applyMesh(s.Mesh)
	c.metrics.configErrors.Set(float64(len(s.Errors)))
	for _, e := range s.Errors {
		c.log.Error("config rejected; last good config stays in force", "error", e.Error())
	}
	for _, n := range s.NotEnforced {
		c.log.Warn("config accepted but NOT ENFORCED", "kind", n.Kind, "resource", n.Namespace+"/"+n.Name,
			"file", n.File, "reason", n.Reason)
	}
}

// reload reads the config folder again and reports whether the config
// changed.
func (c *Controller) reload() bool {
	snap, err := c.source.Load()
	if err != nil {
		c.log.Error("config source unreadable; last good config stays in force", "source", c.sourceName(), "err", err)
		return false
	}
	c.mu.Lock()
	same := snap.Version == c.current.Version
	c.mu.Unlock()
	if same {
		return false
	}
	c.applySnapshot(snap)
	return true
}

// rebuild makes a new push context from the current config and pushes it
// to every connected proxy. A request for a config change reads the
// folder first; one that finds nothing changed pushes nothing.
func (c *Controller) rebuild(req PushRequest) {
	readAt := time.Now()
	if req.Config && !c.reload() && req.onlyConfig() {
		c.log.Debug("config folder changed on disk but not in content; no push")
		c.mu.Lock()
		c.configRead = readAt
		c.mu.Unlock()
		return
	}
	start := time.Now()
	c.mu.Lock()
	resources, configVersion := c.current.Resources, c.current.Version
	c.mu.Unlock()
	prev := c.push.Load()
	mesh := c.mesh.Load()
	change := model.FullChange
	if prev != nil && req.onlyConfig() && prev.mesh == mesh {
		// Istio's ConfigsUpdated: what the edit added, removed or changed.
		change = model.Change{Configs: filesource.ChangedResources(prev.resources, resources)}
	}
	n := c.pushes.Add(1)
	opts := model.PushOptions{Version: strconv.FormatUint(n, 10), Mesh: mesh, Resources: resources,
		Jwks: c.jwks, Change: change}
	if prev != nil {
		opts.Previous = prev.PushContext
	}
	pc := &pushContext{n: n, PushContext: model.NewPushContext(opts), resources: resources, mesh: mesh}
	pc.gen = xdsgen.NewGenerator(pc.PushContext)
	c.storePush(pc)
	c.wakeStatus()
	if req.Config || n == 1 {
		for _, e := range pc.TelemetryErrors() {
			c.log.Error("Telemetry provider not usable; that provider is skipped", "error", e.Error())
		}
	}
	c.metrics.services.Set(float64(len(pc.Services())))
	proxies, kind := c.pushChange(pc, prev, change, req.Start)
	if req.Config || n == 1 {
		// Off the push path: analysis runs in its own goroutine.
		c.analysis.schedule(analysisJob{configVersion: configVersion, pushVersion: pc.Version, resources: resources, mesh: mesh})
	}
	rec := pushRecord{Version: pc.Version, Time: time.Now(), Duration: time.Since(start), Proxies: proxies,
		Reasons: req.Reasons, ChangeStart: req.Start}
	c.mu.Lock()
	c.last = rec
	if req.Config {
		c.configRead = readAt
	}
	c.mu.Unlock()
	c.log.Info("push", "version", pc.Version, "kind", kind, "proxies", proxies, "reasons", req.Reasons,
		"took", time.Since(start).Round(time.Microsecond), "since_change", time.Since(req.Start).Round(time.Millisecond))
}

// pushChange hands a push to the server's queue and waits for it: the
// next push waits for this one, as istiod's debounce does. An
// endpoint-only change sends the changed services' EDS to the proxies
// holding their clusters (and a full push to the sidecars whose own
// inbound reads a moved endpoint); any other change regenerates only the
// proxies it can affect (istiod's ProxyNeedsPush).
func (c *Controller) pushChange(pc, prev *pushContext, change model.Change, start time.Time) (int, string) {
	var prevPC *model.PushContext
	if prev != nil {
		prevPC = prev.PushContext
	}
	if hosts, ok := pc.EndpointsOnly(change, prevPC); ok {
		set := make(map[string]struct{}, len(hosts))
		for _, h := range hosts {
			set[h] = struct{}{}
		}
		full, waitFull := c.server.PushAll(xdsserver.PushRequest{Start: start},
			func(p *model.Proxy) bool { return pc.InboundDependsOn(p, change, prevPC) })
		eds, waitEDS := c.server.PushAll(xdsserver.PushRequest{Start: start, EndpointsOnly: true, Hosts: set}, nil)
		waitFull()
		waitEDS()
		return max(full, eds), "eds"
	}
	n, wait := c.server.PushAll(xdsserver.PushRequest{Start: start},
		func(p *model.Proxy) bool { return pc.AffectsProxy(p, change) })
	wait()
	if change.Full {
		return n, "full"
	}
	return n, "scoped"
}

// endpoints builds endpoint assignments from the newest push context for
// an endpoint-only push.
func (c *Controller) endpoints(p *model.Proxy, clusters []string) ([]*endpoint.ClusterLoadAssignment, uint64, error) {
	pc := c.push.Load()
	if pc == nil {
		return nil, 0, errors.New("no config loaded yet")
	}
	clas, err := pc.gen.Endpoints(p, clusters)
	return clas, pc.n, err
}

// storePush makes pc the newest push context unless a newer one is
// already stored: the push context, like the snapshots made from it, only
// moves forward.
func (c *Controller) storePush(pc *pushContext) {
	for {
		old := c.push.Load()
		if old != nil && old.n > pc.n {
			return
		}
		if c.push.CompareAndSwap(old, pc) {
			return
		}
	}
}

// generate builds a proxy's config from the newest push context and
// returns that context's version.
func (c *Controller) generate(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
	pc := c.push.Load()
	if pc == nil {
		return nil, 0, errors.New("no config loaded yet")
	}
	// Generate validates what it returns (shared resources once per push).
	res, err := pc.gen.Generate(p)
	if err != nil {
		return nil, 0, err
	}
	c.recordConflicts(p.ID, res)
	return res, pc.n, nil
}

// recordConflicts keeps the config conflicts generation found for a proxy
// (shown at /debug/status) and logs each one once.
func (c *Controller) recordConflicts(proxyID string, res *xdsgen.Resources) {
	conflicts := res.Conflicts
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conflicts == nil {
		c.conflicts = map[string][]string{}
		c.conflictCounts = map[string]conflictCounts{}
	}
	c.conflictCounts[proxyID] = conflictCounts{outboundTCP: res.OutboundTCPConflicts, inbound: res.InboundListenerConflicts}
	old := map[string]bool{}
	for _, x := range c.conflicts[proxyID] {
		old[x] = true
	}
	for _, x := range conflicts {
		if !old[x] {
			c.log.Warn("config conflict; the part named is not served", "proxy", proxyID, "conflict", x)
		}
	}
	if len(conflicts) == 0 {
		delete(c.conflicts, proxyID)
		return
	}
	c.conflicts[proxyID] = conflicts
}

// ConfigErrors returns the config problems currently keeping edits out.
func (c *Controller) ConfigErrors() config.Errors {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current.Errors
}

func (c *Controller) serveHTTP(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{Handler: c.statusHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control: status server: %w", err)
	}
	return nil
}
