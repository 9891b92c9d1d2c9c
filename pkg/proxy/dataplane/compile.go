package dataplane

import (
	"fmt"
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
}

// Compile builds a runtime. An error means the resources are invalid or use
// something sluice cannot honour; the caller NACKs and keeps Previous.
func Compile(opts CompileOptions) (*Runtime, xdsclient.Dependencies, error) {
	res := opts.Resources
	rt := &Runtime{
		Listeners: map[string]*Listener{},
		Routes:    map[string]*router.Table{},
		Clusters:  map[string]*upstream.Cluster{},
		Internal:  map[string]string{},
		Source:    res,
		Built:     time.Now(),
	}
	var deps xdsclient.Dependencies
	for name, msg := range res.Items[xdsclient.ListenerType] {
		l, err := compileListener(msg.(*listener.Listener), opts.Identity)
		if err != nil {
			return nil, deps, fmt.Errorf("listener %q: %w", name, err)
		}
		rt.Listeners[name] = l
		for _, c := range l.Chains {
			if c.RouteName != "" && !slices.Contains(deps.Routes, c.RouteName) {
				deps.Routes = append(deps.Routes, c.RouteName)
			}
		}
	}
	for _, name := range deps.Routes {
		msg, ok := res.Items[xdsclient.RouteType][name]
		if !ok {
			rt.Warming = append(rt.Warming, "route "+name)
			continue
		}
		rc := msg.(*route.RouteConfiguration)
		if err := rc.ValidateAll(); err != nil {
			return nil, deps, fmt.Errorf("route %q: %w", name, err)
		}
		t, err := router.Compile(rc)
		if err != nil {
			return nil, deps, err
		}
		rt.Routes[name] = t
	}
	var prevClusters map[string]*upstream.Cluster
	if opts.Previous != nil {
		prevClusters = opts.Previous.Clusters
	}
	for name, msg := range res.Items[xdsclient.ClusterType] {
		c := msg.(*cluster.Cluster)
		if err := c.ValidateAll(); err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		if ln, ok, err := internalCluster(c); err != nil || ok {
			if err != nil {
				return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
			}
			rt.Internal[name] = ln
			continue
		}
		edsName, err := checkCluster(c)
		if err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		var cla *endpoint.ClusterLoadAssignment
		if edsName != "" {
			deps.Endpoints = append(deps.Endpoints, edsName)
			m, ok := res.Items[xdsclient.EndpointType][edsName]
			if !ok {
				rt.Warming = append(rt.Warming, "endpoints "+edsName)
			} else {
				cla = m.(*endpoint.ClusterLoadAssignment)
				if err := cla.ValidateAll(); err != nil {
					return nil, deps, fmt.Errorf("endpoints %q: %w", edsName, err)
				}
			}
		} else {
			cla = c.LoadAssignment
		}
		uc, err := buildCluster(c, cla, prevClusters[name], opts.Stats, clusterEnv{hosts: opts.Hosts, identity: opts.Identity})
		if err != nil {
			return nil, deps, fmt.Errorf("cluster %q: %w", name, err)
		}
		rt.Clusters[name] = uc
	}
	sort.Strings(deps.Endpoints)
	sort.Strings(deps.Routes)
	sort.Strings(rt.Warming)
	return rt, deps, nil
}

func hostForListen(h string) string {
	if h == "::" || (len(h) > 0 && h[0] != '[' && containsColon(h)) {
		return "[" + h + "]"
	}
	return h
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// Equal reports whether two resources are the same config.
func Equal(a, b proto.Message) bool { return proto.Equal(a, b) }
