// Package ztunnel is sluice's node proxy for Istio's ambient mode, doing
// what Istio's ztunnel does: it follows the control plane's workload API
// (WDS: istio.workload.Address and istio.security.Authorization over
// Delta ADS, as istiod serves ztunnel), and for each pod handed to it
// listens inside the pod's network namespace (ztunnel's in-pod mode):
// the pod's outbound connections, captured to OutboundPort, go to mesh
// workloads over HBONE (mutual TLS with the pod's own identity, HTTP/2
// CONNECT to the destination pod's HBONEPort) and to anything else as
// plain TCP; HBONE connections to the pod are authorized with the L4
// AuthorizationPolicies the control plane sent and handed to the app;
// plaintext connections to the pod (InboundPlaintextPort) are
// authorized without an identity.
package ztunnel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/proxy/identity"
)

// Options configure a node proxy.
type Options struct {
	// Identity announces the node proxy (type ztunnel, its own name,
	// namespace and IP) on the xDS stream.
	Identity     model.Proxy
	XDSAddress   string
	ControlPlane identity.ControlPlane
	TrustDomain  string
	CertTTL      time.Duration
	// Pods are the pods whose traffic the node proxy carries.
	Pods []PodSpec
	// Transparent keeps a client's address on the connection to the app
	// (IP_TRANSPARENT; needs the capture's mark routing in the pod).
	Transparent  bool
	AdminAddress string
	Logger       *slog.Logger
}

// Node is a running node proxy.
type Node struct {
	opts Options
	log  *slog.Logger
	ix   atomic.Pointer[index]
	// updated is closed and replaced at each new index.
	mu      sync.Mutex
	updated chan struct{}
	// identities are the pods' workload identities by namespace/sa, one
	// certificate per service account as ztunnel's SecretManager keeps.
	identities map[string]*identity.Workload
	// pods are the pods served, by namespace/name; starting holds those
	// waiting for their workload or certificate.
	pods     map[string]*pod
	starting map[string]context.CancelFunc
	ctx      context.Context
	// running is closed once Run accepts pods (AddPod).
	running  chan struct{}
	counters sync.Map // "direction.event" -> *atomic.Uint64
}

// New makes a node proxy; Run serves.
func New(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	n := &Node{opts: o, log: o.Logger, updated: make(chan struct{}), identities: map[string]*identity.Workload{},
		pods: map[string]*pod{}, starting: map[string]context.CancelFunc{}, running: make(chan struct{})}
	empty, _ := buildIndex(nil, nil)
	n.ix.Store(empty)
	return n
}

func (n *Node) index() *index { return n.ix.Load() }

func (n *Node) apply(ix *index) {
	n.ix.Store(ix)
	n.mu.Lock()
	close(n.updated)
	n.updated = make(chan struct{})
	n.mu.Unlock()
	n.log.Info("workloads updated", "workloads", len(ix.workloads), "services", len(ix.services), "policies", len(ix.policies))
}

func (n *Node) count(direction, event string) {
	v, _ := n.counters.LoadOrStore(direction+"."+event, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Run serves until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	cp := n.opts.ControlPlane
	if cp.Address == "" {
		cp.Address = n.opts.XDSAddress
	}
	n.opts.ControlPlane = cp
	dial, err := cp.DialOptions()
	if err != nil {
		return fmt.Errorf("node proxy: %w", err)
	}
	adminLis, err := net.Listen("tcp", n.opts.AdminAddress)
	if err != nil {
		return fmt.Errorf("node proxy: admin listener: %w", err)
	}
	admin := &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go admin.Serve(adminLis)
	defer admin.Close()
	n.opts.Identity.AdminAddress = adminLis.Addr().String()
	n.log.Info("node proxy starting", "id", n.opts.Identity.NodeID(), "xds", cp.Address, "admin", adminLis.Addr().String(), "pods", len(n.opts.Pods))
	wds := newWDSClient(wdsOptions{Address: cp.Address, DialOptions: dial, Node: n.opts.Identity.Node(),
		Apply: n.apply, Logger: n.log})
	go wds.Run(ctx)
	n.mu.Lock()
	n.ctx = ctx
	n.mu.Unlock()
	close(n.running)
	for _, spec := range n.opts.Pods {
		n.AddPod(spec)
	}
	<-ctx.Done()
	n.mu.Lock()
	for _, p := range n.pods {
		p.close()
	}
	n.pods = map[string]*pod{}
	n.mu.Unlock()
	return nil
}

// Running is closed once Run takes pods (AddPod before it is ignored).
func (n *Node) Running() <-chan struct{} { return n.running }

// AddPod starts serving a pod (once Run has started): its listeners open
// in its namespace once the control plane describes it and its
// certificate is issued. A pod already served or starting is left alone.
func (n *Node) AddPod(spec PodSpec) {
	key := spec.Namespace + "/" + spec.Name
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx == nil || n.pods[key] != nil || n.starting[key] != nil {
		return
	}
	ctx, cancel := context.WithCancel(n.ctx)
	n.starting[key] = cancel
	go func() {
		p, err := n.startPod(ctx, spec)
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.starting, key)
		switch {
		case err != nil && ctx.Err() == nil:
			n.log.Error("pod not captured", "pod", key, "err", err)
		case err == nil && ctx.Err() != nil: // removed or stopped meanwhile
			p.close()
		case err == nil:
			p.cancel = cancel
			n.pods[key] = p
		}
	}()
}

// RemovePod stops serving a pod: its listeners close (connections in
// flight end with them) and its context ends, so a connection accepted
// just before dials nothing more in its namespace (whose path the caller
// may release once this returns).
func (n *Node) RemovePod(namespace, name string) {
	key := namespace + "/" + name
	n.mu.Lock()
	defer n.mu.Unlock()
	if cancel := n.starting[key]; cancel != nil {
		cancel()
	}
	if p := n.pods[key]; p != nil {
		p.close()
		p.cancel()
		delete(n.pods, key)
		n.log.Info("pod released", "pod", key)
	}
}

// startPod waits until the control plane describes the pod, then gets
// its identity and opens its listeners.
func (n *Node) startPod(ctx context.Context, spec PodSpec) (*pod, error) {
	var wl *workload
	for {
		n.mu.Lock()
		ch := n.updated
		n.mu.Unlock()
		if wl = n.index().workloadByName(spec.Namespace, spec.Name); wl != nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
	if len(wl.ips) == 0 {
		return nil, fmt.Errorf("pod %s/%s: workload %s has no address", spec.Namespace, spec.Name, wl.GetUid())
	}
	id, err := n.identityFor(wl)
	if err != nil {
		return nil, err
	}
	select {
	case <-id.Ready():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p := &pod{spec: spec, node: n, wl: wl, id: id,
		log: n.log.With("pod", spec.Namespace+"/"+spec.Name)}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// identityFor returns the certificate holder of the workload's service
// account, starting it on first use.
func (n *Node) identityFor(wl *workload) (*identity.Workload, error) {
	key := wl.GetNamespace() + "/" + wl.GetServiceAccount()
	n.mu.Lock()
	defer n.mu.Unlock()
	if id := n.identities[key]; id != nil {
		return id, nil
	}
	td := wl.GetTrustDomain()
	if td == "" {
		td = n.opts.TrustDomain
	}
	id, err := identity.New(identity.Options{ControlPlane: n.opts.ControlPlane, TrustDomain: td,
		Namespace: wl.GetNamespace(), ServiceAccount: wl.GetServiceAccount(), TTL: n.opts.CertTTL, Logger: n.log,
		// Another service account's certificate, asked for on its behalf
		// (the CA checks that a pod of it runs on this node), as ztunnel.
		Impersonate: wl.GetNamespace() != n.opts.Identity.Namespace || wl.GetServiceAccount() != n.opts.Identity.ServiceAccount})
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", key, err)
	}
	n.identities[key] = id
	go id.Run(n.ctx)
	return id, nil
}

// adminHandler serves /ready (every pod captured), /config_dump (the
// workloads, services and policies in force, as protojson), /stats and
// /debug/pprof/.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		n.mu.Lock()
		ready, want := 0, len(n.opts.Pods)
		for _, spec := range n.opts.Pods {
			if n.pods[spec.Namespace+"/"+spec.Name] != nil {
				ready++
			}
		}
		n.mu.Unlock()
		if ready < want {
			http.Error(w, fmt.Sprintf("%d of %d pods captured", ready, want), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "LIVE")
	})
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) {
		ix := n.index()
		dump := map[string]map[string]json.RawMessage{"workloads": {}, "services": {}, "policies": {}}
		for uid, wl := range ix.workloads {
			dump["workloads"][uid], _ = protojson.Marshal(wl.Workload)
		}
		for key, s := range ix.services {
			dump["services"][key], _ = protojson.Marshal(s.Service)
		}
		for key, p := range ix.policies {
			dump["policies"][key], _ = json.Marshal(map[string]any{"scope": p.scope.String(), "action": p.action.String(), "dryRun": p.dryRun})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(dump)
	})
	// Go's profiler, as the sidecar's admin has it.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		var lines []string
		n.counters.Range(func(k, v any) bool {
			lines = append(lines, fmt.Sprintf("ztunnel.%s: %d", k, v.(*atomic.Uint64).Load()))
			return true
		})
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	})
	return mux
}
