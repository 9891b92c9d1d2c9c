package xdsclient

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// vhdsADS is a Delta ADS server on loopback that serves VHDS as Envoy
// expects it (go-control-plane's cache has no namespace subscriptions):
// CDS and LDS wildcard, EDS and RDS by name, VirtualHost by namespace
// (every resource "<subscribed name>/<any>"). Every subscription is
// answered, with an empty response when nothing is in it, and
// initial_resource_versions are honoured: a stream sends only what differs
// from what the client holds. Per-resource versions are content hashes.
// It records every request and every response sent.
type vhdsADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	t  *testing.T
	mu sync.Mutex
	// res: by type, by name.
	res map[string]map[string]proto.Message
	// holdVHDS: VirtualHost answers wait until it is false again.
	holdVHDS bool
	// everyVirtualHost: VHDS answers carry every VirtualHost, in the
	// namespaces subscribed to or not (a server breaking the rule).
	everyVirtualHost bool
	streams          map[chan struct{}]struct{}
	nonce            int
	reqs             []*discovery.DeltaDiscoveryRequest
	sent             []sent
	addr             string
	stop             func()
}

// vhdsStreamSub is what one stream's client subscribed to for one type
// and what it holds (name -> version).
type vhdsStreamSub struct {
	wildcard bool
	names    map[string]struct{}
	known    map[string]string
	// pending: a subscription not answered yet.
	pending bool
}

func startVHDSServer(t *testing.T, addr string, res map[string]map[string]proto.Message) *vhdsADS {
	t.Helper()
	s := &vhdsADS{t: t, res: res, streams: map[chan struct{}]struct{}{}}
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, s)
	var lis net.Listener
	var err error
	for range 50 { // the same address again after a restart
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	var once sync.Once
	s.stop = func() { once.Do(func() { gs.Stop(); <-done }) }
	t.Cleanup(s.stop)
	return s
}

// update changes the served resources (nil message: removed) and wakes
// every stream.
func (s *vhdsADS) update(f func(res map[string]map[string]proto.Message)) {
	s.mu.Lock()
	f(s.res)
	for ch := range s.streams {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

func (s *vhdsADS) requests() []*discovery.DeltaDiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *vhdsADS) sentSince(n int) []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent[n:])
}

func (s *vhdsADS) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	reqs := make(chan *discovery.DeltaDiscoveryRequest)
	go func() {
		defer close(reqs)
		for {
			req, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case reqs <- req:
			case <-st.Context().Done():
				return
			}
		}
	}()
	wake := make(chan struct{}, 1)
	s.mu.Lock()
	s.streams[wake] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, wake)
		s.mu.Unlock()
	}()
	subs := map[string]*vhdsStreamSub{}
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				return nil
			}
			s.take(subs, req)
		case <-wake:
		case <-st.Context().Done():
			return nil
		}
		for _, resp := range s.answers(subs) {
			if err := st.Send(resp); err != nil {
				return err
			}
		}
	}
}

// take records a request and applies its subscription changes.
func (s *vhdsADS) take(subs map[string]*vhdsStreamSub, req *discovery.DeltaDiscoveryRequest) {
	s.mu.Lock()
	s.reqs = append(s.reqs, proto.Clone(req).(*discovery.DeltaDiscoveryRequest))
	s.mu.Unlock()
	sub := subs[req.TypeUrl]
	if sub == nil {
		sub = &vhdsStreamSub{names: map[string]struct{}{}, known: maps.Clone(req.InitialResourceVersions), pending: true}
		if sub.known == nil {
			sub.known = map[string]string{}
		}
		sub.wildcard = (req.TypeUrl == ClusterType || req.TypeUrl == ListenerType) && len(req.ResourceNamesSubscribe) == 0
		subs[req.TypeUrl] = sub
	}
	for _, n := range req.ResourceNamesSubscribe {
		sub.names[n] = struct{}{}
		sub.pending = true
	}
	for _, n := range req.ResourceNamesUnsubscribe {
		delete(sub.names, n)
	}
	for n := range sub.known {
		if !s.covered(req.TypeUrl, sub, n) {
			delete(sub.known, n) // the client forgets what it unsubscribes
		}
	}
}

func (s *vhdsADS) covered(typeURL string, sub *vhdsStreamSub, name string) bool {
	if sub.wildcard {
		return true
	}
	if typeURL == VirtualHostType {
		if s.everyVirtualHost {
			return true
		}
		name = VirtualHostConfig(name)
	}
	_, ok := sub.names[name]
	return ok
}

// answers are the responses that bring each subscription up to date.
func (s *vhdsADS) answers(subs map[string]*vhdsStreamSub) []*discovery.DeltaDiscoveryResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*discovery.DeltaDiscoveryResponse
	for _, t := range []string{ClusterType, ListenerType, EndpointType, RouteType, VirtualHostType} {
		sub := subs[t]
		if sub == nil || (t == VirtualHostType && s.holdVHDS) {
			continue
		}
		resp := &discovery.DeltaDiscoveryResponse{TypeUrl: t}
		for _, name := range slices.Sorted(maps.Keys(s.res[t])) {
			if !s.covered(t, sub, name) {
				continue
			}
			a, err := anypb.New(s.res[t][name])
			if err != nil {
				s.t.Error(err)
				continue
			}
			h := fnv.New64a()
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(s.res[t][name])
			h.Write(b)
			v := fmt.Sprintf("%016x", h.Sum64())
			if sub.known[name] == v {
				continue
			}
			sub.known[name] = v
			resp.Resources = append(resp.Resources, &discovery.Resource{Name: name, Version: v, Resource: a})
		}
		for _, name := range slices.Sorted(maps.Keys(sub.known)) {
			if _, ok := s.res[t][name]; !ok {
				delete(sub.known, name)
				resp.RemovedResources = append(resp.RemovedResources, name)
			}
		}
		if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 && !sub.pending {
			continue
		}
		sub.pending = false
		s.nonce++
		resp.Nonce = fmt.Sprint(s.nonce)
		resp.SystemVersionInfo = "v" + resp.Nonce
		rec := sent{typeURL: t, nonce: resp.Nonce, removed: resp.RemovedResources}
		for _, r := range resp.Resources {
			rec.names = append(rec.names, r.Name)
		}
		s.sent = append(s.sent, rec)
		out = append(out, resp)
	}
	return out
}

// hold holds (true) or releases VirtualHost answers.
func (s *vhdsADS) hold(on bool) {
	s.update(func(map[string]map[string]proto.Message) { s.holdVHDS = on })
}

// answerTo waits for the client's answer to the response with nonce.
func (s *vhdsADS) answerTo(t *testing.T, nonce string) *discovery.DeltaDiscoveryRequest {
	t.Helper()
	var got *discovery.DeltaDiscoveryRequest
	eventually(t, "the answer to "+nonce, func() error {
		for _, r := range s.requests() {
			if r.ResponseNonce == nonce {
				got = r
				return nil
			}
		}
		return fmt.Errorf("no request answers %s", nonce)
	})
	return got
}
