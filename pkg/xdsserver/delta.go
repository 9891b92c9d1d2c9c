package xdsserver

import (
	"slices"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// DeltaAggregatedResources serves an incremental (delta) ADS stream: each
// response carries only the resources that changed for the proxy and the
// names of those removed, so an endpoint change sends one
// ClusterLoadAssignment, not all of them (the xDS protocol's "incremental
// xDS"; istiod's pilot/pkg/xds/delta.go).
func (s *Server) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	c := &conn{s: s, delta: true, vhds: s.vhds != nil, wakeup: make(chan struct{}, 1)}
	return c.serve(stream.Context(),
		func() (any, error) { return stream.Recv() },
		func(req any) error { return c.onDelta(stream, req.(*discovery.DeltaDiscoveryRequest)) },
		func() error {
			return c.flushAll(func(idx int, snap *Snapshot) error { return c.sendDelta(stream, idx, snap) })
		})
}

// onDelta handles one request: subscription changes, and an ACK or NACK
// of the response its nonce names. A stream's first request of CDS or LDS
// without names is a wildcard subscription; initial_resource_versions
// tell what the proxy already holds (after a reconnect), so only what
// differs is sent.
func (c *conn) onDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, req *discovery.DeltaDiscoveryRequest) error {
	idx, ok, err := c.begin(req.Node, req.TypeUrl)
	if !ok || err != nil {
		return err
	}
	w := &c.watches[idx]
	snap := c.snapshot()
	var t *typeResources
	if snap != nil {
		t = snap.list(idx, c.vhds)
	}
	changed := false
	if !w.requested {
		w.requested, changed = true, true
		w.wildcard = wildcardType(idx) && len(req.ResourceNamesSubscribe) == 0
		w.namespaces = idx == vhdsIdx
		w.have = initialHave(req.InitialResourceVersions, t)
	}
	if len(req.ResourceNamesSubscribe) > 0 || len(req.ResourceNamesUnsubscribe) > 0 {
		changed = true
		w.subscribe(req.ResourceNamesSubscribe, req.ResourceNamesUnsubscribe, t)
	}
	if req.ResponseNonce != "" && req.ResponseNonce == w.nonce {
		if req.ErrorDetail != nil {
			c.nacked(req.TypeUrl, req.ErrorDetail.GetMessage())
		} else {
			c.acked(req.TypeUrl, w.sent)
		}
	}
	if !changed {
		return nil
	}
	return c.sendDelta(stream, idx, snap)
}

// subscribe applies subscription changes. A newly subscribed name is
// dropped from what the proxy is taken to hold, so it is sent again: a
// subscription is always answered with the resource.
func (w *watch) subscribe(add, remove []string, t *typeResources) {
	names := slices.Clone(w.names)
	for _, n := range add {
		if n == "*" {
			w.wildcard = true
			continue
		}
		names = append(names, n)
		w.have = dropName(w.have, n)
		w.answer = true
	}
	w.from = nil // the wanted part changes
	for _, n := range remove {
		if n == "*" {
			w.wildcard = false
			continue
		}
		names = slices.DeleteFunc(names, func(x string) bool { return x == n })
		w.have = dropName(w.have, n)
	}
	w.names, w.interned = intern(names, t), t != nil
}

// dropName returns have without the named resource (a new slice: have
// may be a snapshot's).
func dropName(have []*Resource, name string) []*Resource {
	i, ok := slices.BinarySearchFunc(have, name, func(r *Resource, n string) int { return strings.Compare(r.Name, n) })
	if !ok {
		return have
	}
	return slices.Concat(have[:i:i], have[i+1:])
}

// initialHave turns a reconnecting proxy's initial_resource_versions into
// what it holds: the snapshot's resource where the version matches, else
// a stand-in with the proxy's version (so it is replaced or removed).
func initialHave(versions map[string]string, t *typeResources) []*Resource {
	if len(versions) == 0 {
		return nil
	}
	out := make([]*Resource, 0, len(versions))
	for name, v := range versions {
		if t != nil {
			if r := t.find(name); r != nil && r.Version == v {
				out = append(out, r)
				continue
			}
		}
		out = append(out, &Resource{Name: name, Version: v})
	}
	slices.SortFunc(out, func(a, b *Resource) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// sendDelta sends the resources of a type that differ from what the proxy
// holds, and the names it holds that are gone. The first response of a
// type on a stream is sent even when empty: the proxy waits for it.
func (c *conn) sendDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, idx int, snap *Snapshot) error {
	w := &c.watches[idx]
	if snap == nil || !w.requested {
		return nil
	}
	t := snap.list(idx, c.vhds)
	if w.nonce != "" && !w.answer && sameSlice(w.from, t.items) {
		return nil // nothing changed for this type since it was last looked at
	}
	w.from = t.items
	want := w.wanted(t)
	version := t.version
	if !w.wildcard {
		version = listVersion(want)
	}
	updated, removed := diff(want, w.have)
	if len(updated) == 0 && len(removed) == 0 && w.nonce != "" && !w.answer {
		w.have, w.sent = want, version
		return nil
	}
	size := 0
	for _, r := range updated {
		size += r.size()
	}
	nonce := c.s.nextNonce()
	return c.send(idx, nonce, size, func() error {
		// Built once the budget is granted: a stream waiting for budget
		// holds no response.
		head := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: version, TypeUrl: typeOrder[idx],
			Nonce: nonce, RemovedResources: removed}
		w.have, w.sent, w.nonce, w.answer = want, version, nonce, false
		c.recordSent(head.TypeUrl, version, t.version, size)
		// The codec sends the resources' shared encodings (codec.go).
		return stream.SendMsg(&deltaResponse{head: head, items: updated})
	})
}

// diff compares two name-sorted lists: the resources of want that have
// is missing or holds at another version, and the names only have holds.
func diff(want, have []*Resource) (updated []*Resource, removed []string) {
	i, j := 0, 0
	for i < len(want) || j < len(have) {
		// The same Resource on both sides (the usual case: most of a
		// proxy's list is unchanged) needs no name compared.
		if i < len(want) && j < len(have) && want[i] == have[j] {
			i++
			j++
			continue
		}
		switch {
		case j == len(have) || (i < len(want) && want[i].Name < have[j].Name):
			updated = append(updated, want[i])
			i++
		case i == len(want) || want[i].Name > have[j].Name:
			removed = append(removed, have[j].Name)
			j++
		default:
			if want[i] != have[j] && want[i].Version != have[j].Version {
				updated = append(updated, want[i])
			}
			i++
			j++
		}
	}
	return updated, removed
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []*Resource) bool {
	return len(a) == len(b) && (len(a) == 0 && a != nil && b != nil || len(a) > 0 && &a[0] == &b[0])
}
