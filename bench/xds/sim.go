package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Protocols a simulated proxy speaks.
const (
	protoDelta = "delta"
	protoSotW  = "sotw"
)

// maxMessageBytes is the receive limit of a simulated proxy, as sluice
// proxy's --xds-max-message-bytes default.
const maxMessageBytes = 256 << 20

// watch is what a measurement phase waits for: from start, the first
// response of typeURL carrying a resource that match accepts.
type watch struct {
	start   time.Time
	typeURL string
	// alsoVHDS: virtual host (VHDS) responses count as well (a route
	// change reaches a delta proxy as its virtual host alone).
	alsoVHDS bool
	match    func(typeURL, name string, b []byte) (bool, error)
}

// phaseStats is what one proxy saw during one watch.
type phaseStats struct {
	w         *watch
	first     time.Time // first response of any type at or after w.start
	got       time.Time // first response matching w
	bytes     int64
	responses int
}

// simOptions configure a simulated proxy.
type simOptions struct {
	Address  string
	Dial     []grpc.DialOption
	Node     *core.Node
	Protocol string
	// Watch is the current measurement phase, shared by all proxies.
	Watch *atomic.Pointer[watch]
	// Activity is set to the time of every response any proxy receives.
	Activity *atomic.Int64
}

// simProxy is one proxy's ADS stream: it subscribes as pkg/proxy/xdsclient
// does (CDS and LDS wildcard, then EDS for every EDS cluster and RDS for
// every route configuration they name) and ACKs every response.
type simProxy struct {
	opts simOptions

	mu        sync.Mutex
	start     time.Time
	ready     time.Time
	err       error
	clusters  map[string]string   // cluster -> its EDS name, "" when not EDS
	listeners map[string][]string // listener -> route configurations
	held      map[string]map[string]bool
	acked     map[string]bool
	phase     phaseStats
	// vhds are the route configurations held whose virtual hosts come by
	// VHDS; vhdsAsked the VHDS names subscribed, and vhdsAnswered those a
	// VHDS response came after.
	vhds         map[string]bool
	vhdsAsked    []string
	vhdsAnswered map[string]bool
}

func newSim(o simOptions) *simProxy {
	return &simProxy{opts: o, clusters: map[string]string{}, listeners: map[string][]string{},
		held: map[string]map[string]bool{endpointType: {}, routeType: {}, vhostType: {}}, acked: map[string]bool{},
		vhds: map[string]bool{}, vhdsAnswered: map[string]bool{}}
}

// item is one resource of a response: its name (empty in SotW, where it
// is read from the resource) and its serialized bytes.
type item struct {
	name  string
	value []byte
}

// run connects and serves the stream until ctx ends or the stream fails.
func (p *simProxy) run(ctx context.Context) error {
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	dial := append(slices.Clone(p.opts.Dial), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes)))
	conn, err := grpc.NewClient(p.opts.Address, dial...)
	if err != nil {
		return p.fail(fmt.Errorf("dial %s: %w", p.opts.Address, err))
	}
	defer conn.Close()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	if p.opts.Protocol == protoDelta {
		err = p.runDelta(ctx, ads)
	} else {
		err = p.runSotW(ctx, ads)
	}
	if ctx.Err() != nil {
		return nil
	}
	return p.fail(err)
}

func (p *simProxy) fail(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	return err
}

// isUnimplemented reports whether the server does not serve the protocol.
func isUnimplemented(err error) bool { return status.Code(err) == codes.Unimplemented }

// sendErr turns a Send's io.EOF into the stream's real status: grpc-go's
// ClientStream.SendMsg returns io.EOF when the server has ended the stream,
// and "the status can be discovered using RecvMsg" (grpc stream.go). Without
// it, a server answering Unimplemented races into a bare EOF.
func sendErr(err error, s interface{ RecvMsg(any) error }) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		var m emptypb.Empty
		if rerr := s.RecvMsg(&m); rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return err
			}
			return rerr
		}
	}
}

func (p *simProxy) runSotW(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	stream, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("sotw: open stream: %w", err)
	}
	type sub struct {
		names          []string
		version, nonce string
	}
	subs := map[string]*sub{clusterType: {}, listenerType: {}, endpointType: {}, routeType: {}}
	first := true
	send := func(typeURL string, nack error) error {
		s := subs[typeURL]
		req := &discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: s.version, ResponseNonce: s.nonce, ResourceNames: s.names}
		if first {
			req.Node, first = p.opts.Node, false
		}
		if nack != nil {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
		}
		return sendErr(stream.Send(req), stream)
	}
	for _, t := range []string{clusterType, listenerType} {
		if err := send(t, nil); err != nil {
			return fmt.Errorf("sotw: subscribe: %w", err)
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("sotw: receive: %w", err)
		}
		s, ok := subs[resp.TypeUrl]
		if !ok || !knownType(resp.TypeUrl) {
			continue
		}
		items := make([]item, len(resp.Resources))
		for i, a := range resp.Resources {
			if err := checkAny(a, resp.TypeUrl); err != nil {
				return fmt.Errorf("sotw: %w", err)
			}
			items[i] = item{value: a.Value}
		}
		deps, herr := p.handle(resp.TypeUrl, items, nil, true, proto.Size(resp))
		s.nonce = resp.Nonce
		if herr == nil {
			s.version = resp.VersionInfo
		}
		if err := send(resp.TypeUrl, herr); err != nil {
			return fmt.Errorf("sotw: ack: %w", err)
		}
		if herr != nil {
			return fmt.Errorf("sotw: NACKed %s: %w", resp.TypeUrl, herr)
		}
		p.markAcked(resp.TypeUrl)
		for t, names := range deps {
			if subs[t] == nil { // VHDS: never over SotW
				if len(names) > 0 {
					return fmt.Errorf("sotw: route configurations %v want VHDS, which needs delta xDS", names)
				}
				continue
			}
			if !slices.Equal(subs[t].names, names) {
				subs[t].names = names
				if err := send(t, nil); err != nil {
					return fmt.Errorf("sotw: subscribe: %w", err)
				}
			}
		}
		p.checkReady()
	}
}

func (p *simProxy) runDelta(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) error {
	stream, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("delta: open stream: %w", err)
	}
	subscribed := map[string][]string{}
	first := true
	send := func(req *discovery.DeltaDiscoveryRequest) error {
		if first {
			req.Node, first = p.opts.Node, false
		}
		return sendErr(stream.Send(req), stream)
	}
	// CDS and LDS wildcard: no names in the first request of the type.
	for _, t := range []string{clusterType, listenerType} {
		if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: t}); err != nil {
			return fmt.Errorf("delta: subscribe: %w", err)
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("delta: receive: %w", err)
		}
		if !knownType(resp.TypeUrl) {
			continue
		}
		items := make([]item, 0, len(resp.Resources))
		for _, r := range resp.Resources {
			if r.Resource == nil {
				continue
			}
			if err := checkAny(r.Resource, resp.TypeUrl); err != nil {
				return fmt.Errorf("delta: %s: %w", r.Name, err)
			}
			items = append(items, item{name: r.Name, value: r.Resource.Value})
		}
		deps, herr := p.handle(resp.TypeUrl, items, resp.RemovedResources, false, proto.Size(resp))
		ack := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}
		if herr != nil {
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: herr.Error()}
		}
		if err := send(ack); err != nil {
			return fmt.Errorf("delta: ack: %w", err)
		}
		if herr != nil {
			return fmt.Errorf("delta: NACKed %s: %w", resp.TypeUrl, herr)
		}
		p.markAcked(resp.TypeUrl)
		for t, names := range deps {
			add, del := diffNames(subscribed[t], names)
			if len(add) == 0 && len(del) == 0 {
				continue
			}
			subscribed[t] = names
			if t == vhostType {
				p.mu.Lock()
				p.vhdsAsked = names
				p.mu.Unlock()
			}
			req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: del}
			if err := send(req); err != nil {
				return fmt.Errorf("delta: subscribe: %w", err)
			}
		}
		p.checkReady()
	}
}

// diffNames returns what is in next and not in prev, and the reverse;
// both lists are sorted.
func diffNames(prev, next []string) (add, del []string) {
	for _, n := range next {
		if _, ok := slices.BinarySearch(prev, n); !ok {
			add = append(add, n)
		}
	}
	for _, n := range prev {
		if _, ok := slices.BinarySearch(next, n); !ok {
			del = append(del, n)
		}
	}
	return add, del
}

func (p *simProxy) markAcked(typeURL string) {
	p.mu.Lock()
	p.acked[typeURL] = true
	p.mu.Unlock()
}
