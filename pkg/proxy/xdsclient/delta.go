package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// deltaSub is the client's Delta state for one type on one stream.
type deltaSub struct {
	// wildcard: CDS and LDS, subscribed with an empty first request
	// (the protocol's legacy wildcard, as Envoy subscribes to them).
	wildcard bool
	// names are the EDS/RDS resources subscribed to; for VHDS, the
	// namespaces (route configuration names, vhds.go).
	names map[string]struct{}
	// namespaced: names are namespaces (VHDS), each covering every
	// resource named "<namespace>/<any>".
	namespaced bool
	// opened: a request for the type went out on this stream. A
	// non-wildcard type is opened only with names, as an empty first
	// request would be a wildcard subscription.
	opened bool
}

// deltaSession is one Delta ADS stream.
type deltaSession struct {
	c        *Client
	ads      grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
	subs     map[string]*deltaSub
	first    bool // the next request is the stream's first (carries node)
	received bool // a response arrived on this stream
}

// deltaStream runs one Delta ADS stream (Envoy's xds_protocol.rst,
// "Incremental xDS"): CDS and LDS wildcard, EDS and RDS by name with
// resource_names_subscribe/unsubscribe as accepted clusters and listeners
// name them, initial_resource_versions of what the client holds on every
// new stream, ACK/NACK by response_nonce.
func (c *Client) deltaStream(ctx context.Context, conn *grpc.ClientConn) error {
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("xds: open delta stream: %w", err)
	}
	d := &deltaSession{c: c, ads: ads, first: true, subs: map[string]*deltaSub{
		ClusterType:  {wildcard: true},
		ListenerType: {wildcard: true},
		EndpointType: {names: nameSet(c.deps.Endpoints)},
		RouteType:    {names: nameSet(c.deps.Routes)},
		// Delta only: over SotW route configurations with vhds are NACKed.
		VirtualHostType: {names: nameSet(c.deps.VirtualHosts), namespaced: true},
	}}
	if err := d.open(); err != nil {
		return d.streamErr("subscribe", err)
	}
	for {
		resp, err := ads.Recv()
		if err != nil {
			return d.streamErr("receive", err)
		}
		if !d.received {
			c.opts.Logger.Info("xds stream up", "address", c.opts.Address, "protocol", string(ProtocolDelta))
			d.received = true
		}
		if err := d.respond(resp); err != nil {
			return d.streamErr("ack", err)
		}
		if err := d.follow(); err != nil {
			return d.streamErr("subscribe", err)
		}
	}
}

// streamErr names a stream failure; a control plane that answered the
// stream with Unimplemented before any response does not serve Delta.
func (d *deltaSession) streamErr(what string, err error) error {
	if errors.Is(err, io.EOF) && what != "receive" {
		// A failed Send hides the stream's status; Recv returns it.
		_, err = d.ads.Recv()
	}
	if !d.received && status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("xds: %w: %w", errDeltaUnimplemented, err)
	}
	return fmt.Errorf("xds: %s: %w", what, err)
}

func (d *deltaSession) send(req *discovery.DeltaDiscoveryRequest) error {
	if d.first {
		req.Node = d.c.opts.Node
		d.first = false
	}
	return d.ads.Send(req)
}

// open sends each type's first request: wildcard CDS and LDS, the EDS,
// RDS and VHDS names earlier streams followed (so a reconnect does not wait for
// CDS/LDS before endpoints and routes), each with the versions the client
// holds, so the control plane sends only what changed since.
func (d *deltaSession) open() error {
	for _, t := range []string{ClusterType, ListenerType, EndpointType, RouteType, VirtualHostType} {
		s := d.subs[t]
		if !s.wildcard && len(s.names) == 0 {
			continue
		}
		s.opened = true
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: sortedNames(s.names),
			InitialResourceVersions: d.c.versions[t]}
		if err := d.send(req); err != nil {
			return err
		}
	}
	return nil
}

// respond applies one response and ACKs or NACKs it.
func (d *deltaSession) respond(resp *discovery.DeltaDiscoveryResponse) error {
	var applyErr error
	if s, ok := d.subs[resp.TypeUrl]; ok {
		applyErr = d.c.handleDelta(resp, s)
	} else {
		applyErr = fmt.Errorf("response of type %s, which was not subscribed to", resp.TypeUrl)
	}
	req := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}
	if applyErr != nil {
		d.c.opts.Logger.Warn("rejected config (NACK)", "type", resp.TypeUrl, "version", resp.SystemVersionInfo, "err", applyErr)
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: applyErr.Error()}
	}
	return d.send(req)
}

// follow subscribes to the EDS, RDS and VHDS names accepted clusters,
// listeners and route configurations now refer to and unsubscribes from
// those they no longer do.
func (d *deltaSession) follow() error {
	for _, t := range []string{EndpointType, RouteType, VirtualHostType} {
		var want []string
		switch t {
		case EndpointType:
			want = d.c.deps.Endpoints
		case RouteType:
			want = d.c.deps.Routes
		case VirtualHostType:
			want = d.c.deps.VirtualHosts
		}
		s := d.subs[t]
		wantSet := nameSet(want)
		var sub, unsub []string
		for n := range wantSet {
			if _, ok := s.names[n]; !ok {
				sub = append(sub, n)
			}
		}
		for n := range s.names {
			if _, ok := wantSet[n]; !ok {
				unsub = append(unsub, n)
			}
		}
		if len(sub) == 0 && len(unsub) == 0 {
			continue
		}
		s.names = wantSet
		// Like Envoy, forget what is unsubscribed: the control plane will
		// not say when it goes away.
		d.c.forget(t, unsub, s.namespaced)
		if !s.opened && len(sub) == 0 {
			continue
		}
		s.opened = true
		sort.Strings(sub)
		sort.Strings(unsub)
		if err := d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: t,
			ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}); err != nil {
			return err
		}
	}
	return nil
}

// handleDelta builds the candidate view of one Delta response: the
// accepted resources of its type, plus those it carries, minus those it
// removes, and applies it. Only the response's type is copied.
func (c *Client) handleDelta(resp *discovery.DeltaDiscoveryResponse, s *deltaSub) error {
	t := resp.TypeUrl
	held := c.accepted.Items[t]
	// maps.Clone copies the table as it is, without rehashing each key.
	items, versions := maps.Clone(held), maps.Clone(c.versions[t])
	if items == nil {
		items = make(map[string]proto.Message, len(resp.Resources))
	}
	if versions == nil {
		versions = make(map[string]string, len(resp.Resources))
	}
	seen := make(map[string]struct{}, len(resp.Resources)+len(resp.RemovedResources))
	for _, r := range resp.Resources {
		name, msg, err := decodeDelta(t, r)
		if err != nil {
			return err
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("resource %q twice in one response", name)
		}
		seen[name] = struct{}{}
		if !s.covers(name) {
			continue // not subscribed to: Envoy ignores it too
		}
		if msg == nil {
			// No body: a heartbeat of a resource held (TTL refresh), or
			// one that does not exist; nothing changes either way.
			if _, ok := held[name]; ok {
				versions[name] = r.Version
			}
			continue
		}
		items[name] = msg
		versions[name] = r.Version
	}
	removed, err := removedNames(resp)
	if err != nil {
		return err
	}
	for _, name := range removed {
		if _, dup := seen[name]; dup {
			return fmt.Errorf("resource %q both sent and removed in one response", name)
		}
		seen[name] = struct{}{}
		delete(items, name)
		delete(versions, name)
	}
	for _, re := range resp.ResourceErrors {
		c.opts.Logger.Warn("control plane could not provide a resource", "type", t,
			"name", re.GetResourceName().GetName(), "err", re.GetErrorDetail().GetMessage())
	}
	candidate := c.accepted.withType(t, items, resp.SystemVersionInfo)
	if s.namespaced {
		candidate.VHDSAnswered = answeredBy(candidate.VHDSAnswered, s)
	}
	deps, err := c.opts.Apply(candidate)
	if err != nil {
		return err
	}
	c.accept(candidate, c.versions.withType(t, versions), deps)
	return nil
}

// decodeDelta checks one Delta resource and decodes its body (nil when it
// has none). Fields sluice cannot honour are refused by name.
func decodeDelta(typeURL string, r *discovery.Resource) (string, proto.Message, error) {
	name := r.Name
	if rn := r.ResourceName; rn != nil {
		if rn.DynamicParameterConstraints != nil {
			return "", nil, fmt.Errorf("resource %q: resource_name.dynamic_parameter_constraints is not supported", rn.Name)
		}
		if name != "" && rn.Name != name {
			return "", nil, fmt.Errorf("resource %q: resource_name %q differs from name", name, rn.Name)
		}
		name = rn.Name
	}
	if name == "" {
		return "", nil, errors.New("resource without a name")
	}
	if r.Ttl != nil {
		return "", nil, fmt.Errorf("resource %q: ttl is not supported (resources do not expire)", name)
	}
	if len(r.Aliases) > 0 {
		return "", nil, fmt.Errorf("resource %q: aliases are not supported (on-demand VHDS is not followed)", name)
	}
	if r.Resource == nil {
		return name, nil, nil
	}
	if r.Resource.TypeUrl != typeURL {
		return "", nil, fmt.Errorf("resource %q of type %s in a %s response", name, r.Resource.TypeUrl, typeURL)
	}
	msg, err := r.Resource.UnmarshalNew()
	if err != nil {
		return "", nil, fmt.Errorf("resource %q: decode %s: %w", name, typeURL, err)
	}
	if got := resourceName(msg); got != name {
		return "", nil, fmt.Errorf("resource %q: its body is named %q", name, got)
	}
	return name, msg, nil
}

// removedNames are the names a response removes (removed_resources and
// removed_resource_names).
func removedNames(resp *discovery.DeltaDiscoveryResponse) ([]string, error) {
	out := resp.RemovedResources
	for _, rn := range resp.RemovedResourceNames {
		if rn.DynamicParameterConstraints != nil {
			return nil, fmt.Errorf("removed resource %q: dynamic_parameter_constraints is not supported", rn.Name)
		}
		out = append(out[:len(out):len(out)], rn.Name)
	}
	return out, nil
}

// forget drops resources the client unsubscribed from from its view;
// namespaced (VHDS): every resource in the namespaces named, which are
// no longer answered either.
func (c *Client) forget(typeURL string, names []string, namespaced bool) {
	held := c.accepted.Items[typeURL]
	var drop []string
	if namespaced {
		gone := nameSet(names)
		for n := range held {
			if _, ok := gone[VirtualHostConfig(n)]; ok {
				drop = append(drop, n)
			}
		}
		c.forgetAnswered(names)
	} else {
		for _, n := range names {
			if _, ok := held[n]; ok {
				drop = append(drop, n)
			}
		}
	}
	if len(drop) == 0 {
		return
	}
	items := maps.Clone(held)
	versions := maps.Clone(c.versions[typeURL])
	for _, n := range drop {
		delete(items, n)
		delete(versions, n)
	}
	c.accepted = c.accepted.withType(typeURL, items, c.accepted.Versions[typeURL])
	c.versions = c.versions.withType(typeURL, versions)
}

func nameSet(names []string) map[string]struct{} {
	out := make(map[string]struct{}, len(names))
	for _, n := range names {
		out[n] = struct{}{}
	}
	return out
}

func sortedNames(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// forgetAnswered drops VHDS namespaces unsubscribed from from the answered
// ones: subscribed again, they wait for a new answer.
func (c *Client) forgetAnswered(names []string) {
	answered := c.accepted.VHDSAnswered
	var out map[string]bool
	for _, n := range names {
		if answered[n] {
			if out == nil {
				out = maps.Clone(answered)
			}
			delete(out, n)
		}
	}
	if out != nil {
		c.accepted.VHDSAnswered = out
	}
}
