package dataplane

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsclient"
)

// CompileOptions are the inputs of one compile.
type CompileOptions struct {
	Resources xdsclient.Resources
	// Previous is the runtime in force, whose hosts and pools are reused.
	Previous *Runtime
	Stats    *StatsStore
	// Hosts overrides name resolution for every cluster (--hosts-file).
	Hosts *upstream.Hosts
	// Identity is the proxy's mesh identity (SDS "default" and "ROOTCA").
	Identity upstream.WorkloadIdentity
	// SourceIP, when valid, is the address upstream connections leave
	// from (a sidecar's workload address, --ip).
	SourceIP netip.Addr
}

// Compile builds a runtime. An error means the resources are invalid or use
// something sluice cannot honour; the caller NACKs and keeps Previous.
//
// Only what changed is compiled: a listener, route table or cluster whose
// resources are the ones Previous was built from (the same message, as the
// xDS client keeps types a response did not carry, or an equal one) is
// taken from Previous as it is, so an EDS-only update rebuilds only the
// clusters whose endpoints changed. The new Runtime shares those parts.
func Compile(opts CompileOptions) (*Runtime, xdsclient.Dependencies, error) {
	c := &compiler{opts: opts, rt: &Runtime{
		Listeners: map[string]*Listener{},
		Routes:    map[string]*router.Table{},
		Clusters:  map[string]*upstream.Cluster{},
		Internal:  map[string]string{},
		Source:    opts.Resources,
		Built:     time.Now(),
	}}
	if opts.Previous != nil {
		c.prev = opts.Previous
	} else {
		c.prev = &Runtime{}
	}
	if err := c.listeners(); err != nil {
		return nil, c.deps, err
	}
	if err := c.rt.indexListeners(); err != nil {
		return nil, c.deps, err
	}
	if err := c.routes(); err != nil {
		return nil, c.deps, err
	}
	if err := c.clusters(); err != nil {
		return nil, c.deps, err
	}
	sort.Strings(c.deps.Endpoints)
	sort.Strings(c.deps.Routes)
	sort.Strings(c.deps.VirtualHosts)
	sort.Strings(c.rt.Warming)
	return c.rt, c.deps, nil
}

// CompileCounts says how many resources of each kind one compile built and
// how many it took unchanged from the previous runtime.
type CompileCounts struct {
	ListenersCompiled, ListenersReused int
	RoutesCompiled, RoutesReused       int
	ClustersCompiled, ClustersReused   int
	// The virtual hosts of the route tables compiled or reused (a table
	// compiled reuses the virtual hosts that did not change).
	VirtualHostsCompiled, VirtualHostsReused int
}

// compiler is one Compile run.
type compiler struct {
	opts CompileOptions
	prev *Runtime
	rt   *Runtime
	deps xdsclient.Dependencies
}

// unchanged reports whether msg is the resource typ/name the previous
// runtime was built from. A resource absent from both is unchanged too.
func (c *compiler) unchanged(typ, name string, msg proto.Message) bool {
	old, ok := c.prev.Source.Items[typ][name]
	if !ok || msg == nil {
		return !ok && msg == nil && c.prev.Source.Items != nil
	}
	return old == msg || proto.Equal(old, msg)
}

func (c *compiler) listeners() error {
	for name, msg := range c.opts.Resources.Items[xdsclient.ListenerType] {
		l := c.prev.Listeners[name]
		if l != nil && c.unchanged(xdsclient.ListenerType, name, msg) {
			c.rt.Counts.ListenersReused++
		} else {
			var err error
			if l, err = compileListener(msg.(*listener.Listener), c.opts.Identity); err != nil {
				return fmt.Errorf("listener %q: %w", name, err)
			}
			c.rt.Counts.ListenersCompiled++
		}
		c.rt.Listeners[name] = l
		for _, fc := range l.Chains {
			if fc.RouteName != "" && !slices.Contains(c.deps.Routes, fc.RouteName) {
				c.deps.Routes = append(c.deps.Routes, fc.RouteName)
			}
		}
	}
	return nil
}

func (c *compiler) routes() error {
	var vhds map[string][]*route.VirtualHost // grouped when a configuration has vhds
	for _, name := range c.deps.Routes {
		msg, ok := c.opts.Resources.Items[xdsclient.RouteType][name]
		if !ok {
			c.rt.Warming = append(c.rt.Warming, "route "+name)
			continue
		}
		rc := msg.(*route.RouteConfiguration)
		if rc.Vhds != nil && vhds == nil {
			vhds = c.vhdsGroups()
		}
		if err := c.route(name, rc, vhds[name]); err != nil {
			return err
		}
	}
	return nil
}

// vhdsGroups are the view's VHDS virtual hosts by route configuration,
// taken from the previous runtime when the view's VirtualHost map is the
// one it grouped (the xDS client shares a type's map between views until
// a response of that type comes), so an EDS or CDS update does not
// regroup and sort every virtual host.
func (c *compiler) vhdsGroups() map[string][]*route.VirtualHost {
	items := c.opts.Resources.Items[xdsclient.VirtualHostType]
	if c.prev.vhds.groups != nil && reflect.ValueOf(c.prev.vhds.items).UnsafePointer() == reflect.ValueOf(items).UnsafePointer() {
		c.rt.vhds = c.prev.vhds
	} else {
		c.rt.vhds = vhdsGrouping{items: items, groups: c.opts.Resources.VirtualHostsByConfig()}
		if c.rt.vhds.groups == nil {
			c.rt.vhds.groups = map[string][]*route.VirtualHost{}
		}
	}
	return c.rt.vhds.groups
}

// route compiles one route configuration, with its VHDS virtual hosts
// when it has vhds, or takes it from the previous runtime when neither
// changed. A configuration with vhds whose first VHDS answer has not come
// is checked but not served: it warms (Envoy's VhdsSubscription init
// target), as a route configuration not received yet does.
func (c *compiler) route(name string, rc *route.RouteConfiguration, vhosts []*route.VirtualHost) error {
	prev := c.prev.Routes[name]
	if prev == nil {
		prev = c.prev.warmingRoutes[name] // checked while it waited for VHDS
	}
	answered := true
	if rc.Vhds == nil {
		vhosts = nil // VHDS names in its namespace are no longer followed
	} else {
		c.deps.VirtualHosts = append(c.deps.VirtualHosts, name)
		answered = c.opts.Resources.VHDSAnswered[name]
	}
	if prev != nil && answered && c.unchanged(xdsclient.RouteType, name, rc) && prev.SameVHDS(vhosts) {
		c.rt.Routes[name] = prev
		c.rt.Counts.RoutesReused++
		c.rt.Counts.VirtualHostsReused += prev.Len()
		return nil
	}
	if err := rc.ValidateAll(); err != nil {
		return fmt.Errorf("route %q: %w", name, err)
	}
	t, err := router.CompileWith(router.CompileOptions{Config: rc, VHDSResolved: rc.Vhds != nil, VHDS: vhosts, Previous: prev})
	if err != nil {
		return err
	}
	c.rt.Counts.VirtualHostsCompiled += t.VirtualHostsCompiled
	c.rt.Counts.VirtualHostsReused += t.VirtualHostsReused
	if !answered {
		c.rt.Warming = append(c.rt.Warming, "virtual hosts "+name)
		if c.rt.warmingRoutes == nil {
			c.rt.warmingRoutes = map[string]*router.Table{}
		}
		c.rt.warmingRoutes[name] = t
		return nil
	}
	c.rt.Routes[name] = t
	c.rt.Counts.RoutesCompiled++
	return nil
}

func (c *compiler) clusters() error {
	res := c.opts.Resources
	for name, msg := range res.Items[xdsclient.ClusterType] {
		cl := msg.(*cluster.Cluster)
		if ln, ok, err := internalCluster(cl); err != nil || ok {
			if err != nil {
				return fmt.Errorf("cluster %q: %w", name, err)
			}
			c.rt.Internal[name] = ln
			continue
		}
		c.setClusterService(name, cl)
		edsName := edsServiceName(cl)
		var cla *endpoint.ClusterLoadAssignment
		if edsName != "" {
			c.deps.Endpoints = append(c.deps.Endpoints, edsName)
			if m, ok := res.Items[xdsclient.EndpointType][edsName]; ok {
				cla = m.(*endpoint.ClusterLoadAssignment)
			} else {
				c.rt.Warming = append(c.rt.Warming, "endpoints "+edsName)
			}
		} else {
			cla = cl.LoadAssignment
		}
		prev := c.prev.Clusters[name]
		if prev != nil && c.unchanged(xdsclient.ClusterType, name, msg) &&
			(edsName == "" || c.unchanged(xdsclient.EndpointType, edsName, nilIfAbsent(cla))) {
			c.rt.Clusters[name] = prev // checked and built from these very resources
			c.rt.Counts.ClustersReused++
			continue
		}
		if err := cl.ValidateAll(); err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		if _, err := checkCluster(cl); err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		if edsName != "" && cla != nil {
			if err := cla.ValidateAll(); err != nil {
				return fmt.Errorf("endpoints %q: %w", edsName, err)
			}
		}
		uc, err := buildCluster(cl, cla, prev, c.opts.Stats, clusterEnv{hosts: c.opts.Hosts, identity: c.opts.Identity, sourceIP: c.opts.SourceIP})
		if err != nil {
			return fmt.Errorf("cluster %q: %w", name, err)
		}
		c.rt.Clusters[name] = uc
		c.rt.Counts.ClustersCompiled++
	}
	return nil
}

// edsServiceName is the EDS resource an EDS cluster takes its endpoints
// from (its eds_cluster_config.service_name, else its name); "" for other
// cluster types.
func edsServiceName(cl *cluster.Cluster) string {
	if cl.GetType() != cluster.Cluster_EDS {
		return ""
	}
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.Name
}

// nilIfAbsent turns a missing assignment into an untyped nil message.
func nilIfAbsent(cla *endpoint.ClusterLoadAssignment) proto.Message {
	if cla == nil {
		return nil
	}
	return cla
}
