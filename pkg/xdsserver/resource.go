package xdsserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one xDS resource ready to send: its name, the version of
// its content and its serialized form. It is immutable and shared: every
// proxy whose config holds the same generated message holds the same
// Resource, so a resource is serialized and hashed once however many
// proxies receive it (istiod's xDS cache keeps marshalled Any the same
// way: pilot/pkg/model/xds_cache.go).
type Resource struct {
	Name    string
	Version string
	Any     *anypb.Any
	// Msg is the generated message (for debug dumps); never mutated.
	Msg types.Resource
	// wire is its encoding as an entry of a response (codec.go).
	wire wireEntries
	// id mixes name and content hashes into 64 bits; a list's version is
	// the sum of its members' ids (listVersion), so it costs an addition
	// per member, and swapping one member costs two.
	id uint64
}

// size is the serialized size of the resource's content.
func (r *Resource) size() int { return len(r.Any.GetValue()) }

// marshalCache maps generated messages, by pointer, to their Resource.
// xdsgen shares one message among all proxies with the same view of it,
// so the pointer is the identity to key on. The cache keeps the entries
// of the current and the previous push context: a message is marshalled
// at most once per push that produced it, and entries of older pushes are
// dropped (proxies that still hold them keep them alive).
type marshalCache struct {
	mu      sync.Mutex
	version uint64
	current map[types.Resource]*Resource
	prev    map[types.Resource]*Resource
}

func newMarshalCache() *marshalCache {
	return &marshalCache{current: map[types.Resource]*Resource{}, prev: map[types.Resource]*Resource{}}
}

// get returns msg's Resource, marshalling it if this is the first time
// the cache sees it. version is the push context version msg was
// generated from; a newer one rotates the cache.
func (c *marshalCache) get(msg types.Resource, version uint64) (*Resource, error) {
	c.mu.Lock()
	if version > c.version {
		c.prev, c.current, c.version = c.current, map[types.Resource]*Resource{}, version
	}
	r := c.current[msg]
	if r == nil {
		if r = c.prev[msg]; r != nil {
			c.current[msg] = r
		}
	}
	c.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r, err := newResource(msg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if old := c.current[msg]; old != nil {
		r = old // another worker marshalled it meanwhile
	} else if version >= c.version {
		c.current[msg] = r
	}
	c.mu.Unlock()
	return r, nil
}

// newResource marshals msg deterministically and names its version after
// the content's hash.
func newResource(msg types.Resource) (*Resource, error) {
	name := resourceName(msg)
	if name == "" {
		return nil, fmt.Errorf("resource %T without a name", msg)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	r := &Resource{Name: name, Version: hex.EncodeToString(sum[:8]), Msg: msg, id: resourceID(name, sum[:8]),
		Any: &anypb.Any{TypeUrl: typeURLOf(msg), Value: b}}
	// The content is kept once, inside its delta response entry.
	r.wire, r.Any.Value = encodeEntries(r.Name, r.Version, r.Any.TypeUrl, b)
	return r, nil
}

// deltaEntry is the resource as an entry of a DeltaDiscoveryResponse's
// resources; sotwEntry as one of a DiscoveryResponse's.
func (r *Resource) deltaEntry() mem.BufferSlice {
	if r.wire.delta == nil { // not made by newResource
		e, _ := encodeEntries(r.Name, r.Version, r.Any.GetTypeUrl(), r.Any.GetValue())
		return e.delta
	}
	return r.wire.delta
}

func (r *Resource) sotwEntry() mem.BufferSlice {
	if r.wire.sotw == nil {
		e, _ := encodeEntries(r.Name, r.Version, r.Any.GetTypeUrl(), r.Any.GetValue())
		return e.sotw
	}
	return r.wire.sotw
}

// resourceID mixes a resource's name and content hash.
func resourceID(name string, content []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(content)
	return h.Sum64()
}

// typeURLOf is the type URL of a message, as anypb.New writes it.
func typeURLOf(msg proto.Message) string {
	return "type.googleapis.com/" + string(msg.ProtoReflect().Descriptor().FullName())
}
