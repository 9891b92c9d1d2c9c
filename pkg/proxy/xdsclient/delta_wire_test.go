package xdsclient

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// scriptedADS is a Delta ADS server on loopback that sends the responses
// a test hands it and records every request, for wire cases a real
// control plane never produces.
type scriptedADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	send chan *discovery.DeltaDiscoveryResponse
	mu   sync.Mutex
	reqs []*discovery.DeltaDiscoveryRequest
}

func (s *scriptedADS) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	go func() {
		for {
			req, err := st.Recv()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.reqs = append(s.reqs, req)
			s.mu.Unlock()
		}
	}()
	for {
		select {
		case resp := <-s.send:
			if err := st.Send(resp); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

// answer waits for the client's answer to the response with nonce.
func (s *scriptedADS) answer(t *testing.T, nonce string) *discovery.DeltaDiscoveryRequest {
	t.Helper()
	var got *discovery.DeltaDiscoveryRequest
	eventually(t, "the answer to "+nonce, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.reqs {
			if r.ResponseNonce == nonce {
				got = r
				return nil
			}
		}
		return fmt.Errorf("%d requests, none answers %s", len(s.reqs), nonce)
	})
	return got
}

func startScripted(t *testing.T) (*scriptedADS, *proxy) {
	s := &scriptedADS{send: make(chan *discovery.DeltaDiscoveryResponse, 1)}
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	p, _ := startClient(t, Options{Address: lis.Addr().String()})
	return s, p
}

func clusterResource(t *testing.T, name, bodyName string) *discovery.Resource {
	return &discovery.Resource{Name: name, Version: "v1", Resource: anyOf(t, &cluster.Cluster{Name: bodyName})}
}

// Delta responses that break the protocol's rules, or use what sluice
// cannot honour, are NACKed naming the resource and the reason; a good one
// afterwards is ACKed and builds on the view before them.
func TestDeltaWireRulesNacked(t *testing.T) {
	s, p := startScripted(t)
	ttl := clusterResource(t, "a", "a")
	ttl.Ttl = durationpb.New(1)
	alias := clusterResource(t, "a", "a")
	alias.Aliases = []string{"b"}
	wrongType := &discovery.Resource{Name: "a", Resource: &anypb.Any{TypeUrl: ListenerType}}
	cases := []struct {
		name    string
		resp    *discovery.DeltaDiscoveryResponse
		wantErr string
	}{
		{"ttl", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{ttl}}, `resource "a": ttl is not supported`},
		{"aliases", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{alias}}, `resource "a": aliases are not supported`},
		{"duplicate", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{clusterResource(t, "a", "a"), clusterResource(t, "a", "a")}},
			`resource "a" twice in one response`},
		{"sent and removed", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{clusterResource(t, "a", "a")}, RemovedResources: []string{"a"}},
			`resource "a" both sent and removed in one response`},
		{"body named otherwise", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{clusterResource(t, "a", "b")}},
			`resource "a": its body is named "b"`},
		{"wrong type", &discovery.DeltaDiscoveryResponse{Resources: []*discovery.Resource{wrongType}},
			`resource "a" of type ` + ListenerType + " in a " + ClusterType + " response"},
	}
	for i, tc := range cases {
		tc.resp.TypeUrl, tc.resp.Nonce, tc.resp.SystemVersionInfo = ClusterType, fmt.Sprint(i+1), "bad"
		s.send <- tc.resp
		got := s.answer(t, tc.resp.Nonce)
		if msg := got.GetErrorDetail().GetMessage(); !strings.Contains(msg, tc.wantErr) {
			t.Errorf("%s: answered with error %q, want %q", tc.name, msg, tc.wantErr)
		}
	}
	if n := len(p.last().Items[ClusterType]); n != 0 {
		t.Errorf("after the NACKs the view holds %d clusters", n)
	}
	good := &discovery.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "good", SystemVersionInfo: "v1",
		Resources: []*discovery.Resource{clusterResource(t, "a", "a"), clusterResource(t, "c", "c")}}
	s.send <- good
	if got := s.answer(t, "good"); got.ErrorDetail != nil {
		t.Fatalf("a good response was NACKed: %s", got.ErrorDetail.GetMessage())
	}
	// removed_resource_names removes as removed_resources does.
	s.send <- &discovery.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "remove", SystemVersionInfo: "v2",
		RemovedResourceNames: []*discovery.ResourceName{{Name: "c"}}}
	if got := s.answer(t, "remove"); got.ErrorDetail != nil {
		t.Fatalf("the removal was NACKed: %s", got.ErrorDetail.GetMessage())
	}
	if got := describe(p.last()); got != "routes= a=:0" || p.last().Versions[ClusterType] != "v2" {
		t.Errorf("after the removal the view is %q at version %q, want cluster a at v2", got, p.last().Versions[ClusterType])
	}
}
