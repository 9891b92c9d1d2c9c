package xdsserver

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// VHDS (Envoy's Virtual Host Discovery Service): over a delta stream a
// route configuration is sent without its virtual hosts and with `vhds`
// set, and each virtual host is a resource of its own, named
// "<route configuration>/<virtual host>" (the vhost's own name is the
// resource name: Envoy keys VHDS vhosts by it and removes them by resource
// name; source/common/router/route_config_update_receiver_impl.cc). The
// proxy subscribes to a route configuration's name and is sent every
// virtual host under it (Envoy's VhdsSubscription subscribes the route
// configuration's name with namespace matching: source/common/router/
// vhds.cc). So a change to one service's routes sends that one virtual
// host instead of the whole table, and the route configuration itself,
// holding no virtual hosts, does not change at all.
//
// VHDS exists only in delta xDS: a SotW stream is sent the route
// configurations whole. Istio does not use VHDS (it splits route tables
// per port, and a port's table still holds every service on it).

// vhdsConfigSource is the `vhds` of every split route configuration: the
// virtual hosts come over the same ADS stream.
var vhdsConfigSource = &route.Vhds{ConfigSource: &core.ConfigSource{
	ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	ResourceApiVersion:    core.ApiVersion_V3,
}}

// VHDSName is the VHDS resource name of a route configuration's virtual host.
func VHDSName(routeConfig, vhost string) string { return routeConfig + "/" + vhost }

// splitRoute is one route configuration in VHDS form: the configuration
// without its virtual hosts, and the virtual hosts as resources (sorted).
type splitRoute struct {
	head   *Resource
	vhosts []*Resource
}

// vhdsLists are a proxy's RDS and VHDS lists in VHDS form.
type vhdsLists struct {
	routes, vhosts typeResources
}

// vhdsCache splits each route configuration once per push, and builds
// each distinct list of route configurations' VHDS lists once: a
// thousand proxies holding the same route tables share them. Entries of
// the current and the previous push are kept, as marshalCache's.
type vhdsCache struct {
	mu                    sync.Mutex
	version               uint64
	routes, prevRoutes    map[*Resource]*splitRoute
	lists, prevLists      map[string]vhdsLists
	newResource           func(proto.Message) (*Resource, error)
	routeField, vhostName protoreflect.FieldDescriptor
}

func newVHDSCache() *vhdsCache {
	rc := (&route.RouteConfiguration{}).ProtoReflect().Descriptor()
	vh := (&route.VirtualHost{}).ProtoReflect().Descriptor()
	return &vhdsCache{routes: map[*Resource]*splitRoute{}, prevRoutes: map[*Resource]*splitRoute{},
		lists: map[string]vhdsLists{}, prevLists: map[string]vhdsLists{},
		newResource: func(m proto.Message) (*Resource, error) { return newResource(m) },
		routeField:  rc.Fields().ByName("virtual_hosts"), vhostName: vh.Fields().ByName("name")}
}

// split returns the VHDS form of a proxy's route configurations (rds,
// sealed), from the cache when the same list was split in this push or
// the previous one.
func (c *vhdsCache) split(rds *typeResources, version uint64) (vhdsLists, error) {
	key := listIdentity(rds.items)
	c.mu.Lock()
	if version > c.version {
		c.prevRoutes, c.routes = c.routes, map[*Resource]*splitRoute{}
		c.prevLists, c.lists = c.lists, map[string]vhdsLists{}
		c.version = version
	}
	hit, ok := c.lists[key]
	if !ok {
		if hit, ok = c.prevLists[key]; ok {
			c.lists[key] = hit
		}
	}
	c.mu.Unlock()
	if ok {
		return hit, nil
	}
	out := vhdsLists{routes: typeResources{items: make([]*Resource, 0, len(rds.items))}}
	for _, r := range rds.items {
		sr, err := c.splitOne(r, version)
		if err != nil {
			return vhdsLists{}, err
		}
		out.routes.items = append(out.routes.items, sr.head)
		out.vhosts.items = append(out.vhosts.items, sr.vhosts...)
	}
	if err := out.routes.seal(); err != nil {
		return vhdsLists{}, fmt.Errorf("VHDS route configurations: %w", err)
	}
	if err := out.vhosts.seal(); err != nil {
		return vhdsLists{}, fmt.Errorf("VHDS virtual hosts: %w", err)
	}
	c.mu.Lock()
	if version >= c.version {
		c.lists[key] = out
	}
	c.mu.Unlock()
	return out, nil
}

// listIdentity keys a list of shared Resources by their addresses: the
// cache holds the Resources, so no address is reused while it is a key.
func listIdentity(items []*Resource) string {
	b := make([]byte, 0, 8*len(items))
	for _, r := range items {
		p := uintptr(unsafe.Pointer(r))
		for range 8 {
			b = append(b, byte(p))
			p >>= 8
		}
	}
	return string(b)
}

// splitOne returns one route configuration in VHDS form.
func (c *vhdsCache) splitOne(r *Resource, version uint64) (*splitRoute, error) {
	c.mu.Lock()
	sr := c.routes[r]
	if sr == nil {
		if sr = c.prevRoutes[r]; sr != nil {
			c.routes[r] = sr
		}
	}
	c.mu.Unlock()
	if sr != nil {
		return sr, nil
	}
	rc, ok := r.Msg.(*route.RouteConfiguration)
	if !ok {
		return nil, fmt.Errorf("route configuration %q: a %T", r.Name, r.Msg)
	}
	var err error
	sr, err = c.buildSplit(rc)
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: VHDS: %w", r.Name, err)
	}
	c.mu.Lock()
	if version >= c.version {
		c.routes[r] = sr
	}
	c.mu.Unlock()
	return sr, nil
}

// buildSplit makes the VHDS form of rc. Messages are copied shallowly
// (every field but the one replaced is shared with rc, which nobody
// mutates): the generated config is not copied.
func (c *vhdsCache) buildSplit(rc *route.RouteConfiguration) (*splitRoute, error) {
	head := &route.RouteConfiguration{}
	copyFieldsExcept(rc.ProtoReflect(), head.ProtoReflect(), c.routeField)
	head.Vhds = vhdsConfigSource
	sr := &splitRoute{vhosts: make([]*Resource, 0, len(rc.GetVirtualHosts()))}
	var err error
	if sr.head, err = c.newResource(head); err != nil {
		return nil, err
	}
	for _, vh := range rc.GetVirtualHosts() {
		// A proxy finds a VHDS host's route configuration before the
		// name's last '/' (Envoy's rule): a '/' in the host's own name
		// would file it under another configuration.
		if strings.Contains(vh.GetName(), "/") {
			return nil, fmt.Errorf("virtual host %q: a '/' in its name cannot be a VHDS resource name", vh.GetName())
		}
		named := &route.VirtualHost{}
		copyFieldsExcept(vh.ProtoReflect(), named.ProtoReflect(), c.vhostName)
		named.Name = VHDSName(rc.GetName(), vh.GetName())
		res, err := c.newResource(named)
		if err != nil {
			return nil, err
		}
		sr.vhosts = append(sr.vhosts, res)
	}
	slices.SortFunc(sr.vhosts, func(a, b *Resource) int { return strings.Compare(a.Name, b.Name) })
	return sr, nil
}

// copyFieldsExcept sets every populated field of src on dst but skip.
func copyFieldsExcept(src, dst protoreflect.Message, skip protoreflect.FieldDescriptor) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != skip.Number() {
			dst.Set(fd, v)
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
}

// inNamespace reports whether a VHDS resource name lies under one of the
// subscribed route configuration names, or is one of them exactly (an
// on-demand name). A proxy subscribes a handful.
func inNamespace(name string, subscribed []string) bool {
	for _, ns := range subscribed {
		if name == ns || (len(name) > len(ns) && name[len(ns)] == '/' && strings.HasPrefix(name, ns)) {
			return true
		}
	}
	return false
}
