package xdsgen

import (
	"fmt"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// Generator is generation for one push context, shared by every proxy
// generated from it: istiod's XdsCache (pilot/pkg/model/xds_cache.go) in
// the shape of its clusterCache key (pilot/pkg/networking/core/
// cluster_cache.go). Outbound service clusters, their
// ClusterLoadAssignments and the sidecar outbound route tables depend on
// the proxy only through a few fields (the keys below, field by field);
// each is built once per key, validated once, and the same pointer is
// handed to every proxy with that key. Listeners and inbound resources
// stay per proxy. Safe for concurrent use; nothing may mutate what it
// returns.
type Generator struct {
	push      *model.PushContext
	clusters  flightCache[clusterKey, *sharedCluster]
	endpoints flightCache[endpointKey, *sharedEndpoints]
	routes    flightCache[routeKey, *sharedRoute]
	// peerAuthn memoises endpoint workloads' PeerAuthentication by
	// namespace and labels (auto_mtls.go endpointMTLSEnabled).
	peerAuthn sync.Map
}

// NewGenerator prepares generation for one push.
func NewGenerator(push *model.PushContext) *Generator {
	return &Generator{push: push}
}

// Push is the push context the generator generates from.
func (gen *Generator) Push() *model.PushContext { return gen.push }

// Generate builds the resources for proxy from push: one proxy, nothing
// shared, as NewGenerator(push).Generate(proxy).
func Generate(push *model.PushContext, proxy *model.Proxy) (*Resources, error) {
	return NewGenerator(push).Generate(proxy)
}

// Generate builds one proxy's resources, validated (shared ones once,
// when built). The caller may change the Resources lists but not the
// resources they hold.
func (gen *Generator) Generate(proxy *model.Proxy) (*Resources, error) {
	g := &generation{push: gen.push, proxy: proxy, out: &Resources{}, gen: gen}
	if err := g.generate(); err != nil {
		return nil, fmt.Errorf("generate for %s: %w", proxy.ID, err)
	}
	if err := g.validateOwn(); err != nil {
		return nil, fmt.Errorf("generate for %s: generated config is invalid (a sluice bug): %w", proxy.ID, err)
	}
	return g.out, nil
}

// Endpoints returns the ClusterLoadAssignments of the named EDS clusters
// as proxy sees them, the same pointers Generate returns for the same
// key; names the proxy would not have (not an outbound EDS cluster of a
// service it sees) are skipped.
func (gen *Generator) Endpoints(proxy *model.Proxy, clusters []string) ([]*endpoint.ClusterLoadAssignment, error) {
	g := &generation{push: gen.push, proxy: proxy, out: &Resources{}, gen: gen}
	if proxy.Type == model.Sidecar {
		g.scope = gen.push.SidecarScope(proxy)
	}
	var out []*endpoint.ClusterLoadAssignment
	for _, name := range clusters {
		t, ok := g.serviceClusterNamed(name)
		if !ok {
			continue
		}
		c, err := g.serviceCluster(t)
		if err != nil {
			return nil, fmt.Errorf("endpoints for %s: %w", proxy.ID, err)
		}
		if c.cluster.GetType() != cluster.Cluster_EDS {
			continue
		}
		cla, err := g.serviceEndpoints(t)
		if err != nil {
			return nil, fmt.Errorf("endpoints for %s: %w", proxy.ID, err)
		}
		out = append(out, cla)
	}
	return out, nil
}

// sharedCluster is a cached outbound cluster and the conflicts building
// it reported (replayed into every proxy's Resources that uses it).
type sharedCluster struct {
	cluster   *cluster.Cluster
	conflicts []string
}

// sharedEndpoints is a cached ClusterLoadAssignment.
type sharedEndpoints struct {
	cla *endpoint.ClusterLoadAssignment
}

// sharedRoute is a cached route table and the conflicts building it
// reported.
type sharedRoute struct {
	rc        *route.RouteConfiguration
	conflicts []string
}

// flight is one cache entry: built once (sync.Once is the singleflight:
// a second proxy asking for a key being built waits for it).
type flight[V any] struct {
	once sync.Once
	v    V
	err  error
}

// flightCache maps keys to values built once.
type flightCache[K comparable, V any] struct{ m sync.Map }

// get returns the value for k, building it with build the first time.
// A build error is cached too: every proxy with that key gets it.
func (c *flightCache[K, V]) get(k K, build func() (V, error)) (V, error) {
	e, ok := c.m.Load(k)
	if !ok {
		e, _ = c.m.LoadOrStore(k, &flight[V]{})
	}
	f := e.(*flight[V])
	f.once.Do(func() { f.v, f.err = build() })
	return f.v, f.err
}

// markShared records a resource that came from the Generator's caches:
// it was validated when built, so validateOwn skips it.
func (g *generation) markShared(r any) {
	if g.shared == nil {
		g.shared = map[any]struct{}{}
	}
	g.shared[r] = struct{}{}
}

// validateOwn validates the resources built for this proxy alone.
func (g *generation) validateOwn() error {
	own := func(r any) bool { _, ok := g.shared[r]; return !ok }
	for _, l := range g.out.Listeners {
		if err := validateListener(l); err != nil {
			return err
		}
	}
	for _, r := range g.out.Routes {
		if own(r) {
			if err := validateRoute(r); err != nil {
				return err
			}
		}
	}
	for _, c := range g.out.Clusters {
		if own(c) {
			if err := validateCluster(c); err != nil {
				return err
			}
		}
	}
	for _, e := range g.out.Endpoints {
		if own(e) {
			if err := validateEndpoints(e); err != nil {
				return err
			}
		}
	}
	return nil
}
