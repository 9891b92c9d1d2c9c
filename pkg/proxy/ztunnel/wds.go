package ztunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/workloadapi"
	"github.com/sluice-mesh/sluice/pkg/workloadapi/security"
)

// The WDS types istiod serves ztunnel, over Delta ADS only
// (pilot/pkg/xds/workload.go; ztunnel src/xds/types.rs).
const (
	AddressType       = "type.googleapis.com/istio.workload.Address"
	AuthorizationType = "type.googleapis.com/istio.security.Authorization"
)

// wdsOptions configure the WDS client.
type wdsOptions struct {
	Address     string
	DialOptions []grpc.DialOption
	Node        *core.Node
	// Apply takes a new index; the client keeps the resources that built it.
	Apply           func(*index)
	MaxMessageBytes int
	Logger          *slog.Logger
}

// wdsClient follows the control plane's Address and Authorization
// resources on one Delta ADS stream (wildcard, as ztunnel subscribes),
// reconnecting with backoff. A response that does not build an index is
// NACKed with the reason and the last good index stays in force.
type wdsClient struct {
	opts  wdsOptions
	addrs map[string]*workloadapi.Address
	authz map[string]*security.Authorization
	// versions are the accepted resources' versions per type, sent as
	// initial_resource_versions on reconnect.
	versions map[string]map[string]string
}

func newWDSClient(o wdsOptions) *wdsClient {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 256 << 20
	}
	return &wdsClient{opts: o, addrs: map[string]*workloadapi.Address{}, authz: map[string]*security.Authorization{},
		versions: map[string]map[string]string{AddressType: {}, AuthorizationType: {}}}
}

// Run keeps the stream up until ctx ends.
func (c *wdsClient) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		c.opts.Logger.Warn("wds stream ended; reconnecting", "address", c.opts.Address, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *wdsClient) stream(ctx context.Context) error {
	dial := append(c.opts.DialOptions[:len(c.opts.DialOptions):len(c.opts.DialOptions)],
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.opts.MaxMessageBytes)))
	conn, err := grpc.NewClient(c.opts.Address, dial...)
	if err != nil {
		return fmt.Errorf("wds: dial %s: %w", c.opts.Address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("wds: open stream: %w", err)
	}
	for i, t := range []string{AddressType, AuthorizationType} {
		// No names: a wildcard subscription (every resource of the type).
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t,
			InitialResourceVersions: c.versions[t]}
		if i == 0 {
			req.Node = c.opts.Node
		}
		if err := ads.Send(req); err != nil {
			return fmt.Errorf("wds: subscribe %s: %w", t, err)
		}
	}
	for {
		resp, err := ads.Recv()
		if err != nil {
			return fmt.Errorf("wds: receive: %w", err)
		}
		ack := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}
		if err := c.apply(resp); err != nil {
			c.opts.Logger.Warn("rejected config (NACK)", "type", resp.TypeUrl, "version", resp.SystemVersionInfo, "err", err)
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		}
		if err := ads.Send(ack); err != nil {
			return fmt.Errorf("wds: ack: %w", err)
		}
	}
}

// apply builds the candidate resource set of one response and its index;
// only when the index builds does the candidate replace what is held.
func (c *wdsClient) apply(resp *discovery.DeltaDiscoveryResponse) error {
	addrs, authz := c.addrs, c.authz
	versions := map[string]string{}
	for k, v := range c.versions[resp.TypeUrl] {
		versions[k] = v
	}
	switch resp.TypeUrl {
	case AddressType:
		addrs = cloneMap(c.addrs)
		if err := mergeDelta(resp, addrs, versions, func() *workloadapi.Address { return &workloadapi.Address{} }); err != nil {
			return err
		}
	case AuthorizationType:
		authz = cloneMap(c.authz)
		if err := mergeDelta(resp, authz, versions, func() *security.Authorization { return &security.Authorization{} }); err != nil {
			return err
		}
	default:
		return fmt.Errorf("response of type %s, which was not subscribed to", resp.TypeUrl)
	}
	ix, err := buildIndex(addrs, authz)
	if err != nil {
		return err
	}
	c.addrs, c.authz, c.versions[resp.TypeUrl] = addrs, authz, versions
	c.opts.Apply(ix)
	return nil
}

func mergeDelta[T proto.Message](resp *discovery.DeltaDiscoveryResponse, into map[string]T, versions map[string]string, alloc func() T) error {
	for _, r := range resp.Resources {
		if r.GetResource() == nil {
			return fmt.Errorf("resource %q: no content", r.GetName())
		}
		if got := r.GetResource().GetTypeUrl(); got != resp.TypeUrl {
			return fmt.Errorf("resource %q: type %s in a %s response", r.GetName(), got, resp.TypeUrl)
		}
		m := alloc()
		if err := r.GetResource().UnmarshalTo(m); err != nil {
			return fmt.Errorf("resource %q: %w", r.GetName(), err)
		}
		if r.GetName() == "" {
			return errors.New("a resource without a name")
		}
		into[r.GetName()] = m
		versions[r.GetName()] = r.GetVersion()
	}
	for _, name := range resp.RemovedResources {
		delete(into, name)
		delete(versions, name)
	}
	return nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
