package xdsclient

import (
	"context"
	"errors"
	"fmt"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// subscription is the client's SotW state for one type on one stream.
type subscription struct {
	names   []string // nil means wildcard
	nonce   string
	version string
	sent    bool
}

// sotwStream runs one State of the World ADS stream.
func (c *Client) sotwStream(ctx context.Context, conn *grpc.ClientConn) error {
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("xds: open stream: %w", err)
	}
	subs := map[string]*subscription{
		ClusterType:  {version: c.accepted.Versions[ClusterType]},
		ListenerType: {version: c.accepted.Versions[ListenerType]},
		EndpointType: {names: c.deps.Endpoints, version: c.accepted.Versions[EndpointType]},
		RouteType:    {names: c.deps.Routes, version: c.accepted.Versions[RouteType]},
	}
	first := true
	send := func(typeURL string, nack error) error {
		s := subs[typeURL]
		req := &discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: s.version, ResponseNonce: s.nonce, ResourceNames: s.names}
		if first {
			req.Node = c.opts.Node
			first = false
		}
		if nack != nil {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
		}
		s.sent = true
		return ads.Send(req)
	}
	for _, t := range []string{ClusterType, ListenerType} {
		if err := send(t, nil); err != nil {
			return fmt.Errorf("xds: subscribe: %w", err)
		}
	}
	// Resubscribe to what earlier streams followed, so a reconnect does not
	// wait for CDS/LDS before endpoints and routes come back.
	for _, t := range []string{EndpointType, RouteType} {
		if len(subs[t].names) > 0 {
			if err := send(t, nil); err != nil {
				return fmt.Errorf("xds: subscribe: %w", err)
			}
		}
	}
	for received := false; ; received = true {
		resp, err := ads.Recv()
		if err != nil {
			return fmt.Errorf("xds: receive: %w", err)
		}
		if !received {
			c.opts.Logger.Info("xds stream up", "address", c.opts.Address, "protocol", string(ProtocolSotW))
		}
		s, ok := subs[resp.TypeUrl]
		if !ok {
			continue
		}
		s.nonce = resp.Nonce
		applyErr := c.handleSotW(resp)
		if applyErr == nil {
			s.version = resp.VersionInfo
		} else {
			c.opts.Logger.Warn("rejected config (NACK)", "type", resp.TypeUrl, "version", resp.VersionInfo, "err", applyErr)
		}
		if err := send(resp.TypeUrl, applyErr); err != nil {
			return fmt.Errorf("xds: ack: %w", err)
		}
		// Follow what accepted clusters and listeners now refer to.
		for t, names := range map[string][]string{EndpointType: c.deps.Endpoints, RouteType: c.deps.Routes} {
			if !sameNames(subs[t].names, names) || (!subs[t].sent && len(names) > 0) {
				subs[t].names = names
				if err := send(t, nil); err != nil {
					return fmt.Errorf("xds: subscribe: %w", err)
				}
			}
		}
	}
}

// handleSotW decodes one SotW response, the whole of its type, into a
// candidate view and applies it.
func (c *Client) handleSotW(resp *discovery.DiscoveryResponse) error {
	items := make(map[string]proto.Message, len(resp.Resources))
	for _, a := range resp.Resources {
		if a.TypeUrl != resp.TypeUrl {
			return fmt.Errorf("resource of type %s in a %s response", a.TypeUrl, resp.TypeUrl)
		}
		msg, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("decode %s: %w", a.TypeUrl, err)
		}
		name := resourceName(msg)
		if name == "" {
			return errors.New("resource without a name")
		}
		if _, dup := items[name]; dup {
			return fmt.Errorf("duplicate resource %q", name)
		}
		items[name] = msg
	}
	if resp.TypeUrl == RouteType {
		if err := checkNoVHDS(items); err != nil {
			return err
		}
	}
	candidate := c.accepted.withType(resp.TypeUrl, items, resp.VersionInfo)
	deps, err := c.opts.Apply(candidate)
	if err != nil {
		return err
	}
	// SotW gives no per-resource versions: a later Delta stream (never,
	// today: the fallback is for the process's life) announces none.
	c.accept(candidate, c.versions.withType(resp.TypeUrl, nil), deps)
	return nil
}
