package xdsserver

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// randomResource is a Resource as newResource makes it, of a random size
// (empty content and empty strings included: proto.Marshal leaves those
// out).
func randomResource(rng *rand.Rand, i int) *Resource {
	r := &Resource{Name: fmt.Sprintf("r%d", i), Version: fmt.Sprint(rng.Uint64()),
		Any: &anypb.Any{TypeUrl: resourcev3.ClusterType}}
	if rng.IntN(8) == 0 {
		r.Any.TypeUrl = ""
	}
	if rng.IntN(10) == 0 {
		r.Name = ""
	}
	if rng.IntN(10) == 0 {
		r.Version = ""
	}
	if n := rng.IntN(4) * rng.IntN(300); n > 0 {
		r.Any.Value = make([]byte, n)
		for i := range r.Any.Value {
			r.Any.Value[i] = byte(rng.IntN(256))
		}
	}
	r.wire, r.Any.Value = encodeEntries(r.Name, r.Version, r.Any.TypeUrl, r.Any.Value)
	return r
}

// decodeSliced parses what the codec produced, as a proxy would.
func decodeSliced(t *testing.T, b mem.BufferSlice, into proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b.Materialize(), into); err != nil {
		t.Fatalf("parse the codec's output: %v", err)
	}
}

// borrowedAll reports whether every resource's content is inside one of
// the buffers of b itself, not a copy.
func borrowedAll(b mem.BufferSlice, items []*Resource) bool {
	for _, r := range items {
		v := r.Any.GetValue()
		if len(v) == 0 {
			continue
		}
		inside := false
		for _, buf := range b {
			d := buf.ReadOnlyData()
			if len(d) == 0 {
				continue
			}
			lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(d))), uintptr(unsafe.Pointer(unsafe.SliceData(d)))+uintptr(len(d))
			if p := uintptr(unsafe.Pointer(unsafe.SliceData(v))); p >= lo && p+uintptr(len(v)) <= hi {
				inside = true
				break
			}
		}
		if !inside {
			return false
		}
	}
	return true
}

// The codec's responses parse as the messages they stand for, and carry
// the resources' contents by reference.
func TestCodecResponsesParseAsMarshalled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		var items []*Resource
		for j := range rng.IntN(20) {
			items = append(items, randomResource(rng, j))
		}
		dhead := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: fmt.Sprint(rng.Uint64()), TypeUrl: resourcev3.ClusterType,
			Nonce: fmt.Sprint(rng.IntN(1000))}
		if rng.IntN(3) == 0 {
			dhead.RemovedResources = []string{"gone-a", "gone-b"}
		}
		if rng.IntN(4) == 0 {
			dhead.ControlPlane = &core.ControlPlane{Identifier: "sluice"}
		}
		want := proto.Clone(dhead).(*discovery.DeltaDiscoveryResponse)
		for _, r := range items {
			want.Resources = append(want.Resources, &discovery.Resource{Name: r.Name, Version: r.Version, Resource: r.Any})
		}
		b, err := codec{}.Marshal(&deltaResponse{head: dhead, items: items})
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() != proto.Size(want) {
			t.Fatalf("case %d: delta response is %d bytes, proto.Size says %d", i, b.Len(), proto.Size(want))
		}
		got := &discovery.DeltaDiscoveryResponse{}
		decodeSliced(t, b, got)
		if !proto.Equal(got, want) {
			t.Fatalf("case %d: delta response parsed as\n%v\nwant\n%v", i, got, want)
		}
		if !borrowedAll(b, items) {
			t.Fatalf("case %d: a resource's bytes were copied into the delta response", i)
		}

		shead := &discovery.DiscoveryResponse{VersionInfo: fmt.Sprint(rng.Uint64()), TypeUrl: resourcev3.ClusterType,
			Nonce: fmt.Sprint(rng.IntN(1000)), Canary: rng.IntN(2) == 0}
		wantS := proto.Clone(shead).(*discovery.DiscoveryResponse)
		for _, r := range items {
			wantS.Resources = append(wantS.Resources, r.Any)
		}
		if b, err = (codec{}).Marshal(&sotwResponse{head: shead, items: items}); err != nil {
			t.Fatal(err)
		}
		gotS := &discovery.DiscoveryResponse{}
		decodeSliced(t, b, gotS)
		if !proto.Equal(gotS, wantS) || b.Len() != proto.Size(wantS) {
			t.Fatalf("case %d: SotW response parsed as\n%v\nwant\n%v", i, gotS, wantS)
		}
		if !borrowedAll(b, items) {
			t.Fatalf("case %d: a resource's bytes were copied into the SotW response", i)
		}
	}
}

// BenchmarkCodecDeltaResponse compares a 1,000-resource response sent as
// the resources' shared encodings against marshalling the whole message.
func BenchmarkCodecDeltaResponse(b *testing.B) {
	head := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: "v", TypeUrl: resourcev3.ClusterType, Nonce: "1"}
	whole := proto.Clone(head).(*discovery.DeltaDiscoveryResponse)
	var items []*Resource
	for i := range 1000 {
		r := &Resource{Name: fmt.Sprintf("outbound|80||svc-%d.ns.svc.cluster.local", i), Version: "0123456789abcdef",
			Any: &anypb.Any{TypeUrl: resourcev3.ClusterType, Value: make([]byte, 600)}}
		r.wire, r.Any.Value = encodeEntries(r.Name, r.Version, r.Any.TypeUrl, r.Any.Value)
		items = append(items, r)
		whole.Resources = append(whole.Resources, &discovery.Resource{Name: r.Name, Version: r.Version, Resource: r.Any})
	}
	b.Run("shared-entries", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (codec{}).Marshal(&deltaResponse{head: head, items: items}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(whole); err != nil {
				b.Fatal(err)
			}
		}
	})
}
