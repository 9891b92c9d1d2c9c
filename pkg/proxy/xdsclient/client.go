// Package xdsclient is the proxy's side of ADS: it subscribes to clusters
// and listeners, follows them to the endpoints and routes they name, hands
// every candidate config to a compiler and answers each response with an
// ACK, or a NACK carrying the compiler's reason.
//
// It speaks Delta (incremental) xDS by default and State of the World
// xDS when asked to, or when the control plane does not implement Delta
// (Protocol). Delta xDS is specified in Envoy's "xDS REST and gRPC
// protocol" (docs/root/api-docs/xds_protocol.rst, "Incremental xDS").
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Type URLs the client subscribes to, in the order Envoy asks for them.
var (
	ClusterType  = resourcev3.ClusterType
	EndpointType = resourcev3.EndpointType
	ListenerType = resourcev3.ListenerType
	RouteType    = resourcev3.RouteType
	// VirtualHostType is VHDS (vhds.go): Delta only.
	VirtualHostType = resourcev3.VirtualHostType
)

// Protocol is the ADS variant the client speaks.
type Protocol string

const (
	// ProtocolAuto speaks Delta, and SotW for the rest of the process's
	// life once a control plane answers Delta with Unimplemented.
	ProtocolAuto Protocol = "auto"
	// ProtocolDelta speaks Delta xDS only (DeltaAggregatedResources).
	ProtocolDelta Protocol = "delta"
	// ProtocolSotW speaks State of the World xDS only
	// (StreamAggregatedResources).
	ProtocolSotW Protocol = "sotw"
)

// ParseProtocol checks a --xds-protocol value.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case ProtocolAuto, ProtocolDelta, ProtocolSotW:
		return p, nil
	}
	return "", fmt.Errorf("xds protocol %q: must be delta, sotw or auto", s)
}

// DefaultMaxMessageBytes is the largest xDS response the client accepts
// by default (grpc-go's own default, 4 MiB, is too small for a large
// mesh's SotW responses).
const DefaultMaxMessageBytes = 256 << 20

// Dependencies names what accepted resources refer to: the EDS and RDS
// resources the client must subscribe to next, and the route
// configurations whose virtual hosts come from VHDS (their names are the
// VHDS subscriptions, vhds.go).
type Dependencies struct {
	Endpoints    []string
	Routes       []string
	VirtualHosts []string
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
	Apply func(Resources) (Dependencies, error)
	// Protocol is the ADS variant; empty means ProtocolAuto.
	Protocol Protocol
	// MaxMessageBytes is the largest response accepted (gRPC's
	// MaxCallRecvMsgSize); 0 means DefaultMaxMessageBytes.
	MaxMessageBytes int
	Logger          *slog.Logger
}

// Client keeps one ADS stream open, reconnecting with backoff.
type Client struct {
	opts     Options
	accepted Resources
	// versions are the accepted resources' Delta versions.
	versions resourceVersions
	deps     Dependencies
	// sotw is set once an auto client fell back to SotW.
	sotw atomic.Bool
}

// New makes a client; Run connects it.
func New(opts Options) *Client {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Protocol == "" {
		opts.Protocol = ProtocolAuto
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return &Client{opts: opts, accepted: emptyResources(), versions: resourceVersions{}}
}

// errDeltaUnimplemented: the control plane answered Delta ADS with
// codes.Unimplemented before sending anything.
var errDeltaUnimplemented = errors.New("the control plane does not implement Delta xDS")

// Run keeps the stream up until ctx ends. Config accepted before a
// disconnect stays in force while reconnecting.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errDeltaUnimplemented) && c.opts.Protocol == ProtocolAuto {
			c.sotw.Store(true)
			c.opts.Logger.Warn("control plane does not implement Delta xDS; using State of the World xDS from now on",
				"address", c.opts.Address)
			continue
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

// Protocol is the ADS variant the client speaks now.
func (c *Client) Protocol() Protocol {
	if c.opts.Protocol == ProtocolSotW || c.sotw.Load() {
		return ProtocolSotW
	}
	return ProtocolDelta
}

// connect runs one stream of the protocol in use.
func (c *Client) connect(ctx context.Context) error {
	dial := c.opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	dial = append(dial[:len(dial):len(dial)], grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.opts.MaxMessageBytes)))
	conn, err := grpc.NewClient(c.opts.Address, dial...)
	if err != nil {
		return fmt.Errorf("xds: dial %s: %w", c.opts.Address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.Protocol() == ProtocolSotW {
		return c.sotwStream(ctx, conn)
	}
	return c.deltaStream(ctx, conn)
}

// accept makes a candidate the view in force after Apply took it.
func (c *Client) accept(candidate Resources, versions resourceVersions, deps Dependencies) {
	c.accepted = candidate
	c.versions = versions
	c.deps = deps
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
