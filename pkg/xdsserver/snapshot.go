package xdsserver

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// Snapshot is one proxy's whole config: per type, its resources sorted by
// name and a version naming that list. It is immutable once built; the
// resources are shared with other proxies' snapshots.
type Snapshot struct {
	types [numTypes]typeResources
	// vhdsRoutes are the route configurations in VHDS form (vhds.go) when
	// the server splits them (types[vhdsIdx] then holds the virtual hosts):
	// what a delta stream is sent as RDS.
	vhdsRoutes typeResources
	hasVHDS    bool
}

type typeResources struct {
	items   []*Resource // sorted by name
	version string
	sum     uint64 // listVersion's sum of items
	// hosts indexes EDS names by service host, built on first use and
	// shared by every snapshot sharing the list (withEndpoints keeps the
	// names, so it keeps the index).
	hosts *hostIndex
}

// hostIndex maps a service host to the EDS resource names of its
// clusters (outbound|port|subset|host, xdsgen.ClusterName): an
// endpoint-only push finds a proxy's clusters of the changed hosts
// without scanning its thousand names.
type hostIndex struct {
	once sync.Once
	m    map[string][]string
}

// namesOf returns the names of the list's resources of the given hosts.
func (t *typeResources) namesOf(hosts map[string]struct{}) []string {
	idx := t.hosts
	if idx == nil { // a list not sealed here (tests): scan
		idx = &hostIndex{}
	}
	idx.once.Do(func() {
		idx.m = map[string][]string{}
		for _, r := range t.items {
			if i := strings.LastIndexByte(r.Name, '|'); i >= 0 {
				h := r.Name[i+1:]
				idx.m[h] = append(idx.m[h], r.Name)
			}
		}
	})
	var out []string
	for h := range hosts {
		out = append(out, idx.m[h]...)
	}
	return out
}

// The types served, in the order a push sends them (CDS before EDS, LDS
// before RDS, as istiod's PushOrder: pilot/pkg/xds/ads.go; a route
// configuration's virtual hosts after it; the workload API last, Address
// before Authorization, as istiod's). VHDS and the workload API (wds.go)
// are served on delta streams only.
const (
	cdsIdx = iota
	edsIdx
	ldsIdx
	rdsIdx
	vhdsIdx
	addrIdx
	authzIdx
	numTypes
)

var typeOrder = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType,
	resourcev3.VirtualHostType, xdsgen.AddressType, xdsgen.AuthorizationType}

// typeIndex is the index of a served type URL, or -1.
func typeIndex(typeURL string) int {
	for i, t := range typeOrder {
		if t == typeURL {
			return i
		}
	}
	return -1
}

// NewSnapshot packs generated resources into a snapshot, marshalling each
// message (tests and tools; the server shares marshalled messages through
// its cache).
func NewSnapshot(res *xdsgen.Resources) (*Snapshot, error) {
	return buildSnapshot(res, snapshotOptions{resource: func(m types.Resource) (*Resource, error) { return newResource(m) }})
}

// snapshotOptions are how buildSnapshot makes and shares Resources.
type snapshotOptions struct {
	// resource makes a generated message a Resource.
	resource func(types.Resource) (*Resource, error)
	// lists, when not nil, shares whole lists: proxies of one view get the
	// very same list of shared messages from xdsgen, and then share one
	// sorted list of Resources instead of each marshalling, sorting and
	// holding its own.
	lists *listCache
	// vhds, when not nil, adds the route configurations' VHDS form.
	vhds *vhdsCache
	// version is the push context version the resources come from.
	version uint64
}

// buildSnapshot packs generated resources.
func buildSnapshot(res *xdsgen.Resources, o snapshotOptions) (*Snapshot, error) {
	s := &Snapshot{}
	resource, lists := o.resource, o.lists
	var err error
	if s.types[cdsIdx], err = buildViewType(res.Clusters, res.ViewClusters, resource, lists); err != nil {
		return nil, fmt.Errorf("snapshot: CDS: %w", err)
	}
	if s.types[edsIdx], err = buildViewType(res.Endpoints, res.ViewEndpoints, resource, lists); err != nil {
		return nil, fmt.Errorf("snapshot: EDS: %w", err)
	}
	if s.types[ldsIdx], err = buildType(res.Listeners, resource, nil); err != nil {
		return nil, fmt.Errorf("snapshot: LDS: %w", err)
	}
	if s.types[rdsIdx], err = buildType(res.Routes, resource, lists); err != nil {
		return nil, fmt.Errorf("snapshot: RDS: %w", err)
	}
	// The workload API lists are one list per push, shared by every
	// ztunnel: lists shares their sealed form.
	if s.types[addrIdx], err = buildType(res.Addresses, resource, lists); err != nil {
		return nil, fmt.Errorf("snapshot: Address: %w", err)
	}
	if s.types[authzIdx], err = buildType(res.Authorizations, resource, lists); err != nil {
		return nil, fmt.Errorf("snapshot: Authorization: %w", err)
	}
	if o.vhds != nil {
		split, err := o.vhds.split(&s.types[rdsIdx], o.version)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		s.vhdsRoutes, s.types[vhdsIdx], s.hasVHDS = split.routes, split.vhosts, true
	}
	return s, nil
}

// list is the list of type idx a stream is sent: with vhds (a delta
// stream of a server that splits route configurations), the route
// configurations in VHDS form.
func (s *Snapshot) list(idx int, vhds bool) *typeResources {
	if idx == rdsIdx && vhds && s.hasVHDS {
		return &s.vhdsRoutes
	}
	return &s.types[idx]
}

// viewVersion is the version of a type's list as a stream sees it (list).
func (s *Snapshot) viewVersion(typeURL string, vhds bool) string {
	if i := typeIndex(typeURL); i >= 0 {
		return s.list(i, vhds).version
	}
	return ""
}

// buildViewType builds a list whose first view entries are a list shared
// by many proxies: that part once (lists), the rest for this proxy, then
// both merged by name.
func buildViewType[T types.Resource](msgs []T, view int, resource func(types.Resource) (*Resource, error), lists *listCache) (typeResources, error) {
	if view <= 0 || view > len(msgs) || lists == nil {
		return buildType(msgs, resource, lists)
	}
	shared, err := buildType(msgs[:view], resource, lists)
	if err != nil || view == len(msgs) {
		return shared, err
	}
	own, err := buildType(msgs[view:], resource, nil)
	if err != nil {
		return typeResources{}, err
	}
	t := typeResources{items: make([]*Resource, 0, len(msgs)), sum: shared.sum + own.sum, hosts: &hostIndex{}}
	i, j := 0, 0
	for i < len(shared.items) || j < len(own.items) {
		switch {
		case j == len(own.items) || (i < len(shared.items) && shared.items[i].Name < own.items[j].Name):
			t.items = append(t.items, shared.items[i])
			i++
		case i == len(shared.items) || own.items[j].Name < shared.items[i].Name:
			t.items = append(t.items, own.items[j])
			j++
		default:
			return typeResources{}, fmt.Errorf("two resources named %q", own.items[j].Name)
		}
	}
	t.version = versionString(t.sum, len(t.items))
	return t, nil
}

func buildType[T types.Resource](msgs []T, resource func(types.Resource) (*Resource, error), lists *listCache) (typeResources, error) {
	if hit, ok := findList(lists, msgs); ok {
		return hit, nil
	}
	t := typeResources{items: make([]*Resource, 0, len(msgs))}
	for _, m := range msgs {
		r, err := resource(m)
		if err != nil {
			return typeResources{}, err
		}
		t.items = append(t.items, r)
	}
	if err := t.seal(); err != nil {
		return typeResources{}, err
	}
	addList(lists, msgs, t)
	return t, nil
}

// listCache remembers, for the lists of messages seen in the current
// and the previous push, their sealed Resources.
type listCache struct {
	mu      sync.Mutex
	version uint64
	cur     map[listKey][]*listEntry
	prev    map[listKey][]*listEntry
}

// listKey finds candidate lists cheaply; a candidate is then compared
// message by message (pointers).
type listKey struct {
	first, last types.Resource
	n           int
}

type listEntry struct {
	msgs []types.Resource
	t    typeResources
}

func newListCache() *listCache {
	return &listCache{cur: map[listKey][]*listEntry{}, prev: map[listKey][]*listEntry{}}
}

// rotate starts the cache of push version v, keeping the previous one.
func (c *listCache) rotate(v uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v > c.version {
		c.prev, c.cur, c.version = c.cur, map[listKey][]*listEntry{}, v
	}
}

// minShared is the length under which a list is not worth remembering.
const minShared = 8

// findList returns the sealed list of a list of messages seen before in
// this push or the previous one.
func findList[T types.Resource](c *listCache, msgs []T) (typeResources, bool) {
	if c == nil || len(msgs) < minShared {
		return typeResources{}, false
	}
	k := listKey{first: msgs[0], last: msgs[len(msgs)-1], n: len(msgs)}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[listKey][]*listEntry{c.cur, c.prev} {
		for _, e := range m[k] {
			if sameMsgs(e.msgs, msgs) {
				if m := c.cur; m[k] == nil || !slices.Contains(m[k], e) {
					m[k] = append(m[k], e)
				}
				return e.t, true
			}
		}
	}
	return typeResources{}, false
}

// addList remembers a sealed list of messages.
func addList[T types.Resource](c *listCache, msgs []T, t typeResources) {
	if c == nil || len(msgs) < minShared {
		return
	}
	k := listKey{first: msgs[0], last: msgs[len(msgs)-1], n: len(msgs)}
	e := &listEntry{msgs: make([]types.Resource, len(msgs)), t: t}
	for i, m := range msgs {
		e.msgs[i] = m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur[k]) < 4 { // a few candidates per key at most
		c.cur[k] = append(c.cur[k], e)
	}
}

func sameMsgs[T types.Resource](a []types.Resource, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != types.Resource(b[i]) {
			return false
		}
	}
	return true
}

// seal sorts the resources, refuses duplicate names and computes the
// version.
func (t *typeResources) seal() error {
	slices.SortFunc(t.items, func(a, b *Resource) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(t.items); i++ {
		if t.items[i].Name == t.items[i-1].Name {
			return fmt.Errorf("two resources named %q", t.items[i].Name)
		}
	}
	for _, r := range t.items {
		t.sum += r.key()
	}
	t.version = versionString(t.sum, len(t.items))
	t.hosts = &hostIndex{}
	return nil
}

// listVersion names the content of a sorted list: the sum of its
// members' ids (name and content), so equal lists have equal versions,
// nothing is hashed again to compute it, and an endpoint-only push
// updates it by the members it swaps (withEndpoints). A resource without
// an id (what a reconnecting proxy says it holds) counts by its name and
// version.
func listVersion(items []*Resource) string {
	var sum uint64
	for _, r := range items {
		sum += r.key()
	}
	return versionString(sum, len(items))
}

// key is the resource's id, computed from name and version when unset.
func (r *Resource) key() uint64 {
	if r.id != 0 {
		return r.id
	}
	return resourceID(r.Name, []byte(r.Version))
}

func versionString(sum uint64, n int) string {
	// 16 hex digits, as content-hash versions look; n (the list's length)
	// is mixed in so an empty list and a list summing to 0 differ.
	return fmt.Sprintf("%016x", sum^uint64(n)*0x9e3779b97f4a7c15)
}

// GetVersion is the version of a type's whole list.
func (s *Snapshot) GetVersion(typeURL string) string {
	if i := typeIndex(typeURL); i >= 0 {
		return s.types[i].version
	}
	return ""
}

// GetResources returns a type's messages by name (debug dumps).
func (s *Snapshot) GetResources(typeURL string) map[string]types.Resource {
	i := typeIndex(typeURL)
	if i < 0 {
		return nil
	}
	out := make(map[string]types.Resource, len(s.types[i].items))
	for _, r := range s.types[i].items {
		out[r.Name] = r.Msg
	}
	return out
}

// find returns the named resource of a type, or nil.
func (t *typeResources) find(name string) *Resource {
	i, ok := slices.BinarySearchFunc(t.items, name, func(r *Resource, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return nil
	}
	return t.items[i]
}

// Consistent checks that every EDS cluster has its endpoints and every
// listener's RDS name its route configuration, and that nothing else is
// served under those types (go-control-plane's Snapshot.Consistent).
func (s *Snapshot) Consistent() error {
	edsNames := make([]string, 0, len(s.types[edsIdx].items))
	for _, r := range s.types[cdsIdx].items {
		c, ok := r.Msg.(*cluster.Cluster)
		if !ok || c.GetType() != cluster.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = r.Name
		}
		edsNames = append(edsNames, name)
	}
	slices.Sort(edsNames) // sorted already unless a service_name differs
	edsNames = slices.Compact(edsNames)
	if err := sameNames("endpoints", edsNames, s.types[edsIdx].items); err != nil {
		return err
	}
	var routeNames []string
	for _, r := range s.types[ldsIdx].items {
		routeNames = append(routeNames, routeRefs(r)...)
	}
	slices.Sort(routeNames)
	return sameNames("route configurations", slices.Compact(routeNames), s.types[rdsIdx].items)
}

// routeRefs are the route configuration names a listener's HTTP
// connection managers name (go-control-plane's GetResourceReferences),
// remembered by listener content: reading them means decoding every
// filter's typed config, and a listener is mostly unchanged across pushes.
func routeRefs(r *Resource) []string {
	routeRefCache.Lock()
	refs, ok := routeRefCache.m[r.Version]
	routeRefCache.Unlock()
	if ok {
		return refs
	}
	for name := range cachev3.GetResourceReferences(map[string]types.ResourceWithTTL{r.Name: {Resource: r.Msg}})[resourcev3.RouteType] {
		refs = append(refs, name)
	}
	routeRefCache.Lock()
	if len(routeRefCache.m) >= maxRouteRefs {
		clear(routeRefCache.m) // bounded: start over rather than grow
	}
	routeRefCache.m[r.Version] = refs
	routeRefCache.Unlock()
	return refs
}

// maxRouteRefs bounds routeRefCache: a few listeners per proxy.
const maxRouteRefs = 1 << 16

var routeRefCache = struct {
	sync.Mutex
	m map[string][]string
}{m: map[string][]string{}}

// sameNames checks that have (sorted by name) serves exactly want (sorted).
func sameNames(what string, want []string, have []*Resource) error {
	i, j := 0, 0
	for i < len(want) || j < len(have) {
		switch {
		case j == len(have) || (i < len(want) && want[i] < have[j].Name):
			return fmt.Errorf("%s %q referred to but not served", what, want[i])
		case i == len(want) || want[i] > have[j].Name:
			return fmt.Errorf("%s %q served but nothing refers to them", what, have[j].Name)
		default:
			i++
			j++
		}
	}
	return nil
}

// withEndpoints returns a copy of s whose EDS list has the given
// resources in place of those of the same names (names s does not hold
// are ignored), sharing everything else.
func (s *Snapshot) withEndpoints(updated []*Resource) (*Snapshot, bool) {
	out := *s
	old := &s.types[edsIdx]
	items := slices.Clone(old.items)
	sum := old.sum
	changed := false
	for _, r := range updated {
		i, ok := slices.BinarySearchFunc(items, r.Name, func(x *Resource, n string) int { return strings.Compare(x.Name, n) })
		if ok && items[i].Version != r.Version {
			sum += r.key() - items[i].key()
			items[i] = r
			changed = true
		}
	}
	if !changed {
		return s, false
	}
	out.types[edsIdx] = typeResources{items: items, sum: sum, version: versionString(sum, len(items)), hosts: old.hosts}
	return &out, true
}
