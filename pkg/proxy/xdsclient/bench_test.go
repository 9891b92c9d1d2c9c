package xdsclient

import (
	"fmt"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// benchClient holds a view of n EDS clusters with their endpoints, as a
// sidecar of an n-service mesh does, and accepts every candidate.
func benchClient(b *testing.B, n int) *Client {
	c := New(Options{Apply: func(Resources) (Dependencies, error) { return Dependencies{}, nil }})
	clusters := make(map[string]proto.Message, n)
	endpoints := make(map[string]proto.Message, n)
	versions := make(map[string]string, n)
	for i := range n {
		name := fmt.Sprintf("outbound|80||svc%04d.ns%d.svc.cluster.local", i, i%10)
		clusters[name] = &cluster.Cluster{Name: name}
		endpoints[name] = &endpoint.ClusterLoadAssignment{ClusterName: name}
		versions[name] = "v1"
	}
	c.accept(c.accepted.withType(ClusterType, clusters, "1").withType(EndpointType, endpoints, "1"),
		c.versions.withType(ClusterType, versions).withType(EndpointType, versions), Dependencies{})
	return c
}

// BenchmarkDeltaEndpointUpdate is one Delta EDS response changing one
// cluster's endpoints in a view of 1000 clusters: decode, candidate view
// (only the EDS map copied), apply, accept.
func BenchmarkDeltaEndpointUpdate(b *testing.B) {
	c := benchClient(b, 1000)
	name := "outbound|80||svc0007.ns7.svc.cluster.local"
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: EndpointType, SystemVersionInfo: "2", Nonce: "1",
		Resources: []*discovery.Resource{{Name: name, Version: "v2", Resource: anyOf(b, &endpoint.ClusterLoadAssignment{ClusterName: name})}}}
	sub := &deltaSub{names: map[string]struct{}{name: {}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.handleDelta(resp, sub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewWithType and BenchmarkViewCloneAll compare building a
// candidate view for one type's change with what the client did before:
// copying every type's map.
func BenchmarkViewWithType(b *testing.B) {
	c := benchClient(b, 1000)
	items := c.accepted.Items[EndpointType]
	b.ReportAllocs()
	for b.Loop() {
		sink = c.accepted.withType(EndpointType, items, "2")
	}
}

func BenchmarkViewCloneAll(b *testing.B) {
	c := benchClient(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		out := Resources{Items: map[string]map[string]proto.Message{}, Versions: map[string]string{}}
		for t, m := range c.accepted.Items {
			cp := make(map[string]proto.Message, len(m))
			for k, v := range m {
				cp[k] = v
			}
			out.Items[t] = cp
		}
		for t, v := range c.accepted.Versions {
			out.Versions[t] = v
		}
		sink = out
	}
}

// sink keeps the benchmarked views from being optimised away.
var sink Resources
