// Package xdsclient is the proxy's side of ADS: it subscribes to clusters
// and listeners, follows them to the endpoints and routes they name, hands
// every candidate config to a compiler and answers each response with an
// ACK, or a NACK carrying the compiler's reason.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Type URLs the client subscribes to, in the order Envoy asks for them.
var (
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
)

// Resources is one consistent view of everything received: for each type,
// the resources by name and the version they came with.
type Resources struct {
	Items    map[string]map[string]proto.Message
	Versions map[string]string
}

func (r Resources) clone() Resources {
	out := Resources{Items: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
	for t, m := range r.Items {
		cp := make(map[string]proto.Message, len(m))
		for k, v := range m {
			cp[k] = v
		}
		out.Items[t] = cp
	}
	for t, v := range r.Versions {
		out.Versions[t] = v
	}
	return out
}

// Dependencies names what accepted resources refer to: the EDS and RDS
// resources the client must subscribe to next.
type Dependencies struct {
	Endpoints []string
	Routes    []string
}

// Options configure a Client.
type Options struct {
	Address string
	// DialOptions dial the control plane (credentials: token, TLS);
	// empty: plaintext without a token.
	DialOptions []grpc.DialOption
	Node        *core.Node
	// Apply compiles a candidate view. An error rejects the response that
	// produced it (NACK) and the previous view stays in force.
	Apply  func(Resources) (Dependencies, error)
	Logger *slog.Logger
}

// Client keeps one ADS stream open, reconnecting with backoff.
type Client struct {
	opts     Options
	accepted Resources
	deps     Dependencies
}

// New makes a client; Run connects it.
func New(opts Options) *Client {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Client{opts: opts, accepted: Resources{Items: map[string]map[string]proto.Message{}, Versions: map[string]string{}}}
}

// Run keeps the stream up until ctx ends. Config accepted before a
// disconnect stays in force while reconnecting.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		c.opts.Logger.Warn("xds stream ended; reconnecting", "address", c.opts.Address, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// subscription is the client's state for one type on one stream.
type subscription struct {
	names   []string // nil means wildcard
	nonce   string
	version string
	sent    bool
}

func (c *Client) stream(ctx context.Context) error {
	dial := c.opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(c.opts.Address, dial...)
	if err != nil {
		return fmt.Errorf("xds: dial %s: %w", c.opts.Address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	for {
		resp, err := ads.Recv()
		if err != nil {
			return fmt.Errorf("xds: receive: %w", err)
		}
		s, ok := subs[resp.TypeUrl]
		if !ok {
			continue
		}
		s.nonce = resp.Nonce
		applyErr := c.handle(resp)
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

// handle decodes one response into a candidate view and applies it.
func (c *Client) handle(resp *discovery.DiscoveryResponse) error {
	items := make(map[string]proto.Message, len(resp.Resources))
	for _, a := range resp.Resources {
		msg, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("decode %s: %w", a.TypeUrl, err)
		}
		if a.TypeUrl != resp.TypeUrl {
			return fmt.Errorf("resource of type %s in a %s response", a.TypeUrl, resp.TypeUrl)
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
	candidate := c.accepted.clone()
	candidate.Items[resp.TypeUrl] = items
	candidate.Versions[resp.TypeUrl] = resp.VersionInfo
	deps, err := c.opts.Apply(candidate)
	if err != nil {
		return err
	}
	c.accepted = candidate
	c.deps = deps
	return nil
}

func resourceName(m proto.Message) string {
	type named interface{ GetName() string }
	type clusterNamed interface{ GetClusterName() string }
	switch v := m.(type) {
	case clusterNamed:
		return v.GetClusterName()
	case named:
		return v.GetName()
	}
	return ""
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
