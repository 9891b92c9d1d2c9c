// Package xdsserver serves generated config to proxies over Envoy's
// aggregated discovery service (ADS, xDS v3), both state of the world and
// delta (incremental), and records what each proxy ACKed or NACKed.
//
// It is istiod's shape (pilot/pkg/xds: DiscoveryServer, Connection,
// PushQueue): pushes go through a queue drained by a bounded pool of
// workers; a proxy's pushes are serialised and versioned so they only move
// forward; each proxy's config is a Snapshot of shared, pre-marshalled
// resources, so a resource many proxies hold is serialized once; a stream
// sends a proxy only what changed for it (delta: only the changed
// resources); an endpoint-only push regenerates and sends only the EDS
// resources of the changed services, to the proxies that hold them.
package xdsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// Options configure a Server.
type Options struct {
	// Versioned builds a proxy's config from the newest push context and
	// returns that push context's version; snapshots are tagged with it
	// and a proxy's snapshot is never replaced by one of an older version.
	// When nil, Generate is used and every snapshot has version 0.
	Versioned func(*model.Proxy) (*xdsgen.Resources, uint64, error)
	// Generate builds the config for a proxy (see Versioned).
	Generate func(*model.Proxy) (*xdsgen.Resources, error)
	// Endpoints builds, from the newest push context, the endpoint
	// assignments of the named clusters as the proxy sees them, and
	// returns that push context's version: an endpoint-only push. When
	// nil, endpoint-only pushes are full pushes.
	Endpoints func(p *model.Proxy, clusters []string) ([]*endpoint.ClusterLoadAssignment, uint64, error)
	// PushWorkers bounds how many proxies' configs are generated at once
	// (istiod's PILOT_PUSH_THROTTLE); 0: the number of CPUs.
	PushWorkers int
	// MaxSendBytes bounds the bytes of responses sent and not yet answered
	// (ACK or NACK), over all streams (0: 32 MiB). A response's resources
	// are shared (codec.go), but what the transport buffers for a slow
	// proxy is its own: without a bound, a thousand proxies connecting at
	// once to a large mesh are written a thousand configs at once (istiod
	// bounds concurrent pushes for the same reason). A response larger
	// than the bound is sent alone.
	MaxSendBytes int64
	// DisableVHDS sends delta streams their route configurations whole,
	// as SotW streams are, instead of with their virtual hosts as VHDS
	// resources (vhds.go).
	DisableVHDS bool
	// Register adds more services to the gRPC server, such as the CA.
	Register []func(*grpc.Server)
	// ServerOptions are added to the gRPC server's (credentials, the
	// token interceptors).
	ServerOptions []grpc.ServerOption
	// Metrics are istiod's xDS metrics (nil: kept but not registered).
	Metrics *Metrics
	Logger  *slog.Logger
}

// Server is the ADS endpoint and the book of connected proxies.
type Server struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer

	opts    Options
	grpc    *grpc.Server
	marshal *marshalCache
	lists   *listCache
	vhds    *vhdsCache // nil with DisableVHDS
	queue   *pushQueue
	// sending is the byte budget of responses being sent (MaxSendBytes).
	sending *semaphore.Weighted

	mu      sync.Mutex
	proxies map[string]*proxyState
	nonce   uint64
}

type proxyState struct {
	proxy     *model.Proxy
	connected time.Time
	conns     map[*conn]struct{}
	types     map[string]*TypeStatus

	// pushMu serialises generating and publishing this proxy's config,
	// from the queue's workers and Push alike.
	pushMu sync.Mutex
	// snap is the published config and pushed the push context version
	// it was made from (both guarded by Server.mu).
	snap   *Snapshot
	pushed uint64
	// pushStart is when the published snapshot's generation began; a
	// response's pilot_xds_push_time starts there or at the proxy's
	// request for that type, whichever is later (guarded by Server.mu).
	pushStart time.Time
	// converging are the types a change's push changed and has not sent
	// yet, with their new versions, and changeStart the first change
	// merged into that push: when the last is sent, the time since
	// changeStart is pilot_proxy_convergence_time (guarded by Server.mu).
	converging  map[string]string
	changeStart time.Time
}

// TypeStatus is what one proxy last said about one resource type.
type TypeStatus struct {
	TypeURL      string    `json:"type"`
	SentVersion  string    `json:"sent_version,omitempty"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckTime      time.Time `json:"ack_time,omitzero"`
	// Nack is the error of the last rejected update, cleared by a later ACK
	// of a newer version.
	Nack        string    `json:"nack,omitempty"`
	NackVersion string    `json:"nack_version,omitempty"`
	NackTime    time.Time `json:"nack_time,omitzero"`
	// requested is when the proxy last asked for this type.
	requested time.Time
}

// ProxyStatus describes one connected proxy.
type ProxyStatus struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	// AdminAddress is the proxy's admin endpoint, when it announces one.
	AdminAddress string    `json:"admin_address,omitempty"`
	Connected    time.Time `json:"connected"`
	// Protocol is "delta" or "sotw", the ADS flavour of its stream.
	Protocol string `json:"protocol,omitempty"`
	// PushVersion is the push context version of the snapshot published
	// to it.
	PushVersion uint64       `json:"push_version"`
	Types       []TypeStatus `json:"types"`
}

// New makes a server; Serve starts it.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Versioned == nil {
		generate := opts.Generate
		opts.Versioned = func(p *model.Proxy) (*xdsgen.Resources, uint64, error) {
			if generate == nil {
				return nil, 0, errors.New("xds server: no generator")
			}
			res, err := generate(p)
			return res, 0, err
		}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.PushWorkers <= 0 {
		opts.PushWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxSendBytes <= 0 {
		opts.MaxSendBytes = 32 << 20
	}
	s := &Server{opts: opts, proxies: map[string]*proxyState{}, marshal: newMarshalCache(), lists: newListCache(),
		sending: semaphore.NewWeighted(opts.MaxSendBytes)}
	if !opts.DisableVHDS {
		s.vhds = newVHDSCache()
	}
	s.queue = newPushQueue(s.process)
	s.queue.waited = func(d time.Duration) { opts.Metrics.queueTime.Observe(d.Seconds()) }
	return s
}

// Serve answers ADS on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.ForceServerCodecV2(codec{}),
		grpc.MaxConcurrentStreams(100000),
		// A connection's write buffer is returned to a shared pool once
		// flushed: a thousand idle proxies do not each keep one.
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}, s.opts.ServerOptions...)...)
	discovery.RegisterAggregatedDiscoveryServiceServer(s.grpc, s)
	for _, register := range s.opts.Register {
		register(s.grpc)
	}
	workers := s.queue.run(ctx, s.opts.PushWorkers)
	go func() {
		<-ctx.Done()
		s.grpc.Stop()
	}()
	err := s.grpc.Serve(lis)
	workers.Wait()
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds server: %w", err)
	}
	return nil
}

// connect registers a new stream of a proxy and queues its first push
// (through the same queue as every other push: istiod's initial pushes
// are throttled alike).
func (s *Server) connect(p *model.Proxy, c *conn) {
	s.mu.Lock()
	st := s.proxies[p.ID]
	if st == nil {
		st = &proxyState{types: map[string]*TypeStatus{}, conns: map[*conn]struct{}{}}
		s.proxies[p.ID] = st
	}
	st.proxy = p
	st.conns[c] = struct{}{}
	st.connected = time.Now()
	c.st = st
	s.mu.Unlock()
	s.opts.Metrics.connected(c.version, 1)
	s.opts.Logger.Info("proxy connected", "id", p.ID, "protocol", c.protocol())
	s.queue.enqueue(p, PushRequest{}, nil)
}

// disconnect forgets a stream; the proxy is forgotten with its last one.
func (s *Server) disconnect(c *conn) {
	if c.st == nil {
		return
	}
	s.opts.Metrics.connected(c.version, -1)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := c.st
	delete(st.conns, c)
	if len(st.conns) == 0 && s.proxies[st.proxy.ID] == st {
		delete(s.proxies, st.proxy.ID)
		s.opts.Logger.Info("proxy disconnected", "id", st.proxy.ID)
	}
}

// Proxies returns the connected proxies.
func (s *Server) Proxies() []*model.Proxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*model.Proxy, 0, len(s.proxies))
	for _, st := range s.proxies {
		out = append(out, st.proxy)
	}
	return out
}

// PushedVersion is the push context version of the snapshot published for
// a connected proxy.
func (s *Server) PushedVersion(nodeID string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.proxies[nodeID]
	if st == nil {
		return 0, false
	}
	return st.pushed, true
}

// Snapshot returns the config last published for a proxy.
func (s *Server) Snapshot(nodeID string) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.proxies[nodeID]
	if st == nil || st.snap == nil {
		return nil, fmt.Errorf("no snapshot for %q", nodeID)
	}
	return st.snap, nil
}

// Status reports every connected proxy and its ACK/NACK state.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for _, st := range s.proxies {
		ps := ProxyStatus{ID: st.proxy.ID, Type: string(st.proxy.Type), Name: st.proxy.Name,
			Namespace: st.proxy.Namespace, Labels: st.proxy.Labels, AdminAddress: st.proxy.AdminAddress,
			Connected: st.connected, PushVersion: st.pushed}
		for c := range st.conns {
			ps.Protocol = c.protocol()
		}
		for _, t := range typeOrder {
			if ts := st.types[t]; ts != nil {
				ps.Types = append(ps.Types, *ts)
			}
		}
		out = append(out, ps)
	}
	sortStatus(out)
	return out
}

func (st *proxyState) status(typeURL string) *TypeStatus {
	ts := st.types[typeURL]
	if ts == nil {
		ts = &TypeStatus{TypeURL: typeURL}
		st.types[typeURL] = ts
	}
	return ts
}

// nextNonce names a response.
func (s *Server) nextNonce() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonce++
	return fmt.Sprintf("%x", s.nonce)
}

func shortType(t string) string {
	switch t {
	case resourcev3.ClusterType:
		return "CDS"
	case resourcev3.EndpointType:
		return "EDS"
	case resourcev3.ListenerType:
		return "LDS"
	case resourcev3.RouteType:
		return "RDS"
	case xdsgen.AddressType:
		return "WDS"
	case xdsgen.AuthorizationType:
		return "WADS"
	}
	return t
}
