// Package xdsserver serves generated config to proxies over Envoy's
// aggregated discovery service (ADS, xDS v3 state of the world), using
// go-control-plane's snapshot cache, and records what each proxy ACKed or
// NACKed. A proxy's pushes are serialised and versioned so they only move
// forward, and every snapshot is checked for consistency before it is
// published.
package xdsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
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
	opts  Options
	cache cachev3.SnapshotCache
	grpc  *grpc.Server

	mu      sync.Mutex
	proxies map[string]*proxyState
	streams map[int64]string
	// streamVersion is the version label each stream is counted under in
	// pilot_xds.
	streamVersion map[int64]string
}

type proxyState struct {
	proxy     *model.Proxy
	connected time.Time
	streams   int
	types     map[string]*TypeStatus

	// pushMu serialises generating and publishing this proxy's config,
	// from the connect path and the rebuild path alike.
	pushMu sync.Mutex
	// pushed is the push context version of the published snapshot
	// (guarded by Server.mu).
	pushed uint64
	// pushStart is when the published snapshot's generation began; a
	// response's pilot_xds_push_time starts there or at the proxy's
	// request for that type, whichever is later (guarded by Server.mu).
	pushStart time.Time
	// converging are the types a rebuild-path push changed and has not
	// sent yet, with their new versions, and changeStart the first change
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
	s := &Server{opts: opts, proxies: map[string]*proxyState{}, streams: map[int64]string{}, streamVersion: map[int64]string{}}
	s.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	return s
}

// Serve answers ADS on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	xds := serverv3.NewServer(ctx, s.cache, s.callbacks())
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxConcurrentStreams(100000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}, s.opts.ServerOptions...)...)
	discovery.RegisterAggregatedDiscoveryServiceServer(s.grpc, xds)
	for _, register := range s.opts.Register {
		register(s.grpc)
	}
	go func() {
		<-ctx.Done()
		s.grpc.Stop()
	}()
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds server: %w", err)
	}
	return nil
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, typ string) error { return nil },
		StreamClosedFunc: func(id int64, node *core.Node) {
			s.streamClosed(id)
		},
		StreamRequestFunc: s.streamRequest,
		StreamResponseFunc: func(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			s.recordSent(id, resp)
		},
		// Delta streams are booked as SotW ones (go-control-plane numbers
		// delta streams apart, from 1 too: deltaStreamID keeps them apart).
		DeltaStreamClosedFunc: func(id int64, node *core.Node) { s.streamClosed(deltaStreamID(id)) },
		StreamDeltaRequestFunc: func(id int64, req *discovery.DeltaDiscoveryRequest) error {
			return s.streamRequest(deltaStreamID(id), s.deltaAsSotW(deltaStreamID(id), req))
		},
		StreamDeltaResponseFunc: func(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
			out := &discovery.DiscoveryResponse{TypeUrl: resp.TypeUrl, VersionInfo: resp.SystemVersionInfo, Nonce: resp.Nonce}
			for _, r := range resp.Resources {
				out.Resources = append(out.Resources, r.Resource)
			}
			s.recordSent(deltaStreamID(id), out)
		},
	}
}

func deltaStreamID(id int64) int64 { return id + 1<<40 }

// deltaAsSotW is a Delta request as streamRequest books it: an ACK
// acknowledges the version last sent of its type.
func (s *Server) deltaAsSotW(id int64, req *discovery.DeltaDiscoveryRequest) *discovery.DiscoveryRequest {
	out := &discovery.DiscoveryRequest{Node: req.Node, TypeUrl: req.TypeUrl, ResponseNonce: req.ResponseNonce, ErrorDetail: req.ErrorDetail}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.proxies[s.streams[id]]; st != nil && req.ResponseNonce != "" {
		out.VersionInfo = st.status(req.TypeUrl).SentVersion
	}
	return out
}

// streamRequest runs before the cache answers a request: a proxy's first
// request registers it and generates its config, so the answer is ready.
func (s *Server) streamRequest(id int64, req *discovery.DiscoveryRequest) error {
	s.mu.Lock()
	nodeID, known := s.streams[id]
	if !known {
		if req.Node == nil {
			s.mu.Unlock()
			return errors.New("first request on a stream carries no node")
		}
		p, err := model.ProxyFromNode(req.Node)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		nodeID = p.ID
		s.streams[id] = nodeID
		version := proxyVersion(req.Node)
		s.streamVersion[id] = version
		s.opts.Metrics.connected(version, 1)
		st := s.proxies[nodeID]
		if st == nil {
			st = &proxyState{proxy: p, types: map[string]*TypeStatus{}}
			s.proxies[nodeID] = st
		}
		st.proxy = p
		st.streams++
		st.connected = time.Now()
		s.mu.Unlock()
		s.opts.Logger.Info("proxy connected", "id", p.ID)
		if err := s.Push(p); err != nil {
			s.opts.Logger.Error("generate config for new proxy", "id", p.ID, "err", err)
		}
		s.mu.Lock()
	}
	st := s.proxies[nodeID]
	if st != nil {
		st.status(req.TypeUrl).requested = time.Now()
	}
	if st != nil && req.ResponseNonce != "" {
		ts := st.status(req.TypeUrl)
		if req.ErrorDetail != nil {
			s.opts.Metrics.rejected(req.TypeUrl)
			ts.Nack = req.ErrorDetail.GetMessage()
			ts.NackVersion = ts.SentVersion
			ts.NackTime = time.Now()
			// A NACK carries the last version the proxy accepted. The
			// snapshot cache would answer it at once with the version just
			// rejected, forever. Like Istio, wait for the next change
			// instead: tell the cache the proxy has seen the sent version.
			req.VersionInfo = ts.SentVersion
			s.opts.Logger.Warn("proxy rejected config (NACK)", "id", nodeID, "type", shortType(req.TypeUrl),
				"version", ts.SentVersion, "error", ts.Nack)
		} else {
			ts.AckedVersion = req.VersionInfo
			ts.AckTime = time.Now()
			if ts.NackVersion != "" && ts.NackVersion != req.VersionInfo {
				ts.Nack, ts.NackVersion = "", ""
			}
		}
	}
	s.mu.Unlock()
	return nil
}

func (st *proxyState) status(typeURL string) *TypeStatus {
	ts := st.types[typeURL]
	if ts == nil {
		ts = &TypeStatus{TypeURL: typeURL}
		st.types[typeURL] = ts
	}
	return ts
}

// recordSent notes a response about to be sent: its version, istiod's
// pilot_xds_pushes and pilot_xds_push_time, and, when it is the last type
// a push changed, pilot_proxy_convergence_time.
func (s *Server) recordSent(id int64, resp *discovery.DiscoveryResponse) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.proxies[s.streams[id]]
	if st == nil {
		return
	}
	ts := st.status(resp.TypeUrl)
	ts.SentVersion = resp.VersionInfo
	start := st.pushStart
	if ts.requested.After(start) {
		start = ts.requested
	}
	s.opts.Metrics.sent(resp, now.Sub(start))
	if v, ok := st.converging[resp.TypeUrl]; ok && v == resp.VersionInfo {
		delete(st.converging, resp.TypeUrl)
		if len(st.converging) == 0 {
			s.opts.Metrics.convergence.Observe(now.Sub(st.changeStart).Seconds())
		}
	}
}

// proxyVersion is the version a proxy announces, as istiod reads it
// (node metadata ISTIO_VERSION), else its user agent version.
func proxyVersion(n *core.Node) string {
	if v := n.GetMetadata().GetFields()["ISTIO_VERSION"].GetStringValue(); v != "" {
		return v
	}
	return n.GetUserAgentVersion()
}

func (s *Server) streamClosed(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodeID, ok := s.streams[id]
	if !ok {
		return
	}
	delete(s.streams, id)
	s.opts.Metrics.connected(s.streamVersion[id], -1)
	delete(s.streamVersion, id)
	st := s.proxies[nodeID]
	if st == nil {
		return
	}
	st.streams--
	if st.streams <= 0 {
		delete(s.proxies, nodeID)
		s.cache.ClearSnapshot(nodeID)
		s.opts.Logger.Info("proxy disconnected", "id", nodeID)
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

// Push generates and publishes the config of one connected proxy (a
// proxy not connected is skipped). Pushes for one proxy are serialised,
// so the connect path and the rebuild path cannot interleave, and a
// snapshot made from an older push context never replaces a newer one:
// versions only move forward. A snapshot that is not consistent (an RDS
// or EDS name referenced and not served, go-control-plane's
// Snapshot.Consistent) is not published: the proxy keeps its previous
// config, never half of a push.
func (s *Server) Push(p *model.Proxy) error { return s.push(p, time.Time{}) }

// PushChange is Push for a config change first seen at changeStart: once
// every type the push changes for the proxy is sent, the time since
// changeStart is recorded in pilot_proxy_convergence_time (as istiod's
// pushConnection records its push request's Start).
func (s *Server) PushChange(p *model.Proxy, changeStart time.Time) error {
	return s.push(p, changeStart)
}

func (s *Server) push(p *model.Proxy, changeStart time.Time) error {
	s.mu.Lock()
	st := s.proxies[p.ID]
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	st.pushMu.Lock()
	defer st.pushMu.Unlock()
	start := time.Now() // generation starts
	res, version, err := s.opts.Versioned(p)
	if err != nil {
		return err
	}
	snap, err := NewSnapshot(res)
	if err != nil {
		return err
	}
	if err := snap.Consistent(); err != nil {
		s.opts.Logger.Error("generated config is inconsistent (a sluice bug); the proxy keeps its previous config",
			"proxy", p.ID, "version", version, "err", err)
		return fmt.Errorf("push %d to %s: inconsistent snapshot, not published: %w", version, p.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proxies[p.ID] != st {
		return nil // disconnected meanwhile
	}
	if version < st.pushed {
		s.opts.Logger.Debug("older push dropped", "proxy", p.ID, "version", version, "published", st.pushed)
		return nil
	}
	// Set before SetSnapshot: the responses it triggers are recorded by
	// recordSent, which waits for s.mu.
	st.pushStart = start
	st.converging = nil
	if !changeStart.IsZero() {
		st.changeStart = changeStart
		for t, ts := range st.types {
			if v := snap.GetVersion(t); ts.SentVersion != "" && v != ts.SentVersion {
				if st.converging == nil {
					st.converging = map[string]string{}
				}
				st.converging[t] = v
			}
		}
	}
	if err := s.cache.SetSnapshot(context.Background(), p.ID, snap); err != nil {
		return fmt.Errorf("set snapshot for %s: %w", p.ID, err)
	}
	st.pushed = version
	return nil
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

// Status reports every connected proxy and its ACK/NACK state.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.proxies))
	for _, st := range s.proxies {
		ps := ProxyStatus{ID: st.proxy.ID, Type: string(st.proxy.Type), Name: st.proxy.Name,
			Namespace: st.proxy.Namespace, Labels: st.proxy.Labels, AdminAddress: st.proxy.AdminAddress,
			Connected: st.connected, PushVersion: st.pushed}
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

// Snapshot returns the config last published for a proxy.
func (s *Server) Snapshot(nodeID string) (cachev3.ResourceSnapshot, error) {
	return s.cache.GetSnapshot(nodeID)
}

var typeOrder = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

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
	}
	return t
}
