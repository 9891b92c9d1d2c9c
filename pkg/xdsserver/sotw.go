package xdsserver

import (
	"slices"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// StreamAggregatedResources serves a state-of-the-world ADS stream: each
// response carries the whole list of a type the proxy asked for (all of
// CDS and LDS; the named EDS and RDS resources), sent when that list's
// content changed.
func (s *Server) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	c := &conn{s: s, wakeup: make(chan struct{}, 1)}
	return c.serve(stream.Context(),
		func() (any, error) { return stream.Recv() },
		func(req any) error { return c.onSotw(stream, req.(*discovery.DiscoveryRequest)) },
		func() error {
			return c.flushAll(func(idx int, snap *Snapshot) error { return c.sendSotw(stream, idx, snap, false) })
		})
}

// onSotw handles one request: an ACK or NACK of the last response, and
// the (possibly changed) names the proxy wants. A stream's first request
// of a type is answered even when the proxy already holds that version;
// a stale nonce is ignored, as Envoy's protocol says.
func (c *conn) onSotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer, req *discovery.DiscoveryRequest) error {
	idx, ok, err := c.begin(req.Node, req.TypeUrl)
	if !ok || err != nil {
		return err
	}
	w := &c.watches[idx]
	if req.ResponseNonce != "" {
		if req.ResponseNonce != w.nonce {
			return nil
		}
		if req.ErrorDetail != nil {
			c.nacked(req.TypeUrl, req.ErrorDetail.GetMessage())
			return nil
		}
		c.acked(req.TypeUrl, req.VersionInfo)
	}
	snap := c.snapshot()
	var t *typeResources
	if snap != nil {
		t = &snap.types[idx]
	}
	wildcard := ((idx == cdsIdx || idx == ldsIdx) && len(req.ResourceNames) == 0) || slices.Contains(req.ResourceNames, "*")
	var names []string
	if !wildcard {
		names = intern(req.ResourceNames, t)
	}
	changed := !w.requested || wildcard != w.wildcard || !slices.Equal(names, w.names)
	w.requested, w.wildcard, w.names, w.interned = true, wildcard, names, t != nil
	if req.ResponseNonce != "" && !changed {
		return nil // an ACK of what the proxy wants
	}
	return c.sendSotw(stream, idx, snap, true)
}

// sendSotw sends a type's list when it differs from the last sent (or
// always, with force).
func (c *conn) sendSotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer, idx int, snap *Snapshot, force bool) error {
	w := &c.watches[idx]
	if snap == nil || !w.requested {
		return nil
	}
	t := &snap.types[idx]
	items := w.wanted(t)
	version := t.version
	if !w.wildcard {
		version = listVersion(items)
	}
	if !force && version == w.sent {
		return nil
	}
	size := 0
	for _, r := range items {
		size += r.size()
	}
	nonce := c.s.nextNonce()
	return c.send(idx, nonce, size, func() error {
		head := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: typeOrder[idx], Nonce: nonce}
		// Booked before the send: the proxy's ACK may be handled right after.
		w.sent, w.nonce = version, nonce
		c.recordSent(head.TypeUrl, version, t.version, size)
		// The codec sends the resources' shared encodings (codec.go).
		return stream.SendMsg(&sotwResponse{head: head, items: items})
	})
}
