package xdsserver

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

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
}

type typeResources struct {
	items   []*Resource // sorted by name
	version string
	sum     uint64 // listVersion's sum of items
}

// The types served, in the order a push sends them (CDS before EDS, LDS
// before RDS, as istiod's PushOrder: pilot/pkg/xds/ads.go).
const (
	cdsIdx = iota
	edsIdx
	ldsIdx
	rdsIdx
	numTypes
)

var typeOrder = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

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
	return buildSnapshot(res, func(m types.Resource) (*Resource, error) { return newResource(m) })
}

func buildSnapshot(res *xdsgen.Resources, resource func(types.Resource) (*Resource, error)) (*Snapshot, error) {
	s := &Snapshot{}
	add := func(idx int, msg types.Resource) error {
		r, err := resource(msg)
		if err != nil {
			return fmt.Errorf("snapshot: %s: %w", shortType(typeOrder[idx]), err)
		}
		s.types[idx].items = append(s.types[idx].items, r)
		return nil
	}
	for _, r := range res.Clusters {
		if err := add(cdsIdx, r); err != nil {
			return nil, err
		}
	}
	for _, r := range res.Endpoints {
		if err := add(edsIdx, r); err != nil {
			return nil, err
		}
	}
	for _, r := range res.Listeners {
		if err := add(ldsIdx, r); err != nil {
			return nil, err
		}
	}
	for _, r := range res.Routes {
		if err := add(rdsIdx, r); err != nil {
			return nil, err
		}
	}
	for i := range s.types {
		if err := s.types[i].seal(); err != nil {
			return nil, fmt.Errorf("snapshot: %s: %w", shortType(typeOrder[i]), err)
		}
	}
	return s, nil
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
	return strconv.FormatUint(sum, 16) + "-" + strconv.Itoa(n)
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
	edsNames := map[string]bool{}
	for _, r := range s.types[cdsIdx].items {
		c, ok := r.Msg.(*cluster.Cluster)
		if !ok || c.GetType() != cluster.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		edsNames[name] = true
	}
	listeners := make(map[string]types.ResourceWithTTL, len(s.types[ldsIdx].items))
	for _, r := range s.types[ldsIdx].items {
		listeners[r.Name] = types.ResourceWithTTL{Resource: r.Msg}
	}
	routeNames := cachev3.GetResourceReferences(listeners)[resourcev3.RouteType]
	if err := sameNames("endpoints", edsNames, s.types[edsIdx].items); err != nil {
		return err
	}
	return sameNames("route configurations", routeNames, s.types[rdsIdx].items)
}

func sameNames(what string, want map[string]bool, have []*Resource) error {
	for _, r := range have {
		if !want[r.Name] {
			return fmt.Errorf("%s %q served but nothing refers to them", what, r.Name)
		}
	}
	if len(have) != len(want) {
		for n := range want {
			if (&typeResources{items: have}).find(n) == nil {
				return fmt.Errorf("%s %q referred to but not served", what, n)
			}
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
	out.types[edsIdx] = typeResources{items: items, sum: sum, version: versionString(sum, len(items))}
	return &out, true
}
