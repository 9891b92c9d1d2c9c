package xdsgen

import (
	"fmt"
	"sync"
	"sync/atomic"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/registry"
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
	// views are the cluster loop's output per proxy view (shared_view.go).
	views flightCache[viewKey, *outboundView]
	// vipRoutes are captured sidecars' per-service route tables
	// (capture.go serviceRoute).
	vipRoutes flightCache[vipRouteKey, *route.RouteConfiguration]
	// failover: some failoverPriority reads proxy labels (computed once).
	failoverOnce sync.Once
	failover     bool
	// destRules are, per proxy namespace, the DestinationRule each
	// service resolves to (push.DestinationRule), services without one
	// left out.
	destRules flightCache[string, map[*registry.Service]*model.DestinationRule]
	// inbound indexes endpoints by address for inbound ports
	// (inbound_index.go); one entry.
	inbound flightCache[struct{}, *endpointIndex]
	// wds is the workload API every ztunnel gets (wds.go); one entry.
	wds flightCache[struct{}, *WDS]
	// generated counts Generate calls.
	generated atomic.Int32
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
	gen.generated.Add(1)
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

// flightCache maps keys to values built once. A read-locked map, not a
// sync.Map: the keys are structs, which a sync.Map would box on every
// lookup.
type flightCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]*flight[V]
}

// get returns the value for k, building it with build the first time.
// A build error is cached too: every proxy with that key gets it.
func (c *flightCache[K, V]) get(k K, build func() (V, error)) (V, error) {
	c.mu.RLock()
	f := c.m[k]
	c.mu.RUnlock()
	if f == nil {
		c.mu.Lock()
		if f = c.m[k]; f == nil {
			if c.m == nil {
				c.m = map[K]*flight[V]{}
			}
			f = &flight[V]{}
			c.m[k] = f
		}
		c.mu.Unlock()
	}
	f.once.Do(func() {
		// A panic would leave the entry empty for every later proxy:
		// it becomes the entry's error instead.
		defer func() {
			if r := recover(); r != nil {
				f.err = fmt.Errorf("generation panicked (a sluice bug): %v", r)
			}
		}()
		f.v, f.err = build()
	})
	return f.v, f.err
}

// sharedIndex records which entries of a generation's Resources lists
// came from the Generator's caches (validated when built), by position.
type sharedIndex struct{ routes, clusters, endpoints []int }

// isShared reports whether position i is next in the ascending list
// idx, advancing it.
func isShared(idx *[]int, i int) bool {
	if len(*idx) > 0 && (*idx)[0] == i {
		*idx = (*idx)[1:]
		return true
	}
	return false
}

// addSharedRoute, addSharedCluster and addSharedEndpoints append a
// resource that came from the Generator's caches (or, without one, was
// built for this proxy alone and is validated with the rest).
func (g *generation) addSharedRoute(r *route.RouteConfiguration) {
	if g.gen != nil {
		g.shared.routes = append(g.shared.routes, len(g.out.Routes))
	}
	g.out.Routes = append(g.out.Routes, r)
}

func (g *generation) addSharedCluster(c *cluster.Cluster) {
	if g.gen != nil {
		g.shared.clusters = append(g.shared.clusters, len(g.out.Clusters))
	}
	g.out.Clusters = append(g.out.Clusters, c)
}

func (g *generation) addSharedEndpoints(e *endpoint.ClusterLoadAssignment) {
	if g.gen != nil {
		g.shared.endpoints = append(g.shared.endpoints, len(g.out.Endpoints))
	}
	g.out.Endpoints = append(g.out.Endpoints, e)
}

// validateOwn validates the resources built for this proxy alone.
func (g *generation) validateOwn() error {
	idx := g.shared
	for _, l := range g.out.Listeners {
		if err := validateListener(l); err != nil {
			return err
		}
	}
	for i, r := range g.out.Routes {
		if !isShared(&idx.routes, i) {
			if err := validateRoute(r); err != nil {
				return err
			}
		}
	}
	for i, c := range g.out.Clusters {
		if !isShared(&idx.clusters, i) {
			if err := validateCluster(c); err != nil {
				return err
			}
		}
	}
	for i, e := range g.out.Endpoints {
		if !isShared(&idx.endpoints, i) {
			if err := validateEndpoints(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// serviceDestinationRule is the DestinationRule the proxy's namespace
// resolves for svc: push.DestinationRule, looked up once per namespace
// and service when there is a Generator.
func (g *generation) serviceDestinationRule(svc *registry.Service) *model.DestinationRule {
	if g.gen == nil {
		return g.push.DestinationRule(g.proxy.Namespace, svc.Hostname, svc.Namespace)
	}
	ns := g.proxy.Namespace
	m, _ := g.gen.destRules.get(ns, func() (map[*registry.Service]*model.DestinationRule, error) {
		m := map[*registry.Service]*model.DestinationRule{}
		for _, svc := range g.push.Services() {
			if dr := g.push.DestinationRule(ns, svc.Hostname, svc.Namespace); dr != nil {
				m[svc] = dr
			}
		}
		return m, nil
	})
	return m[svc]
}
