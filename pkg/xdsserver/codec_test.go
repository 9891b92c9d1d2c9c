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
	"google.golang.org/protobuf/types/known/durationpb"
)

// randomAny is an Any of a random size, empty value and empty type URL
// included (proto.Marshal leaves those out).
func randomAny(rng *rand.Rand) *anypb.Any {
	a := &anypb.Any{TypeUrl: resourcev3.ClusterType}
	if rng.IntN(8) == 0 {
		a.TypeUrl = ""
	}
	if n := rng.IntN(4) * rng.IntN(300); n > 0 {
		a.Value = make([]byte, n)
		for i := range a.Value {
			a.Value[i] = byte(rng.IntN(256))
		}
	}
	return a
}

func randomDeltaResponse(rng *rand.Rand) *discovery.DeltaDiscoveryResponse {
	m := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: fmt.Sprint(rng.Uint64()), TypeUrl: resourcev3.ClusterType,
		Nonce: fmt.Sprint(rng.IntN(1000))}
	if rng.IntN(3) == 0 {
		m.RemovedResources = []string{"gone-a", "gone-b"}
	}
	if rng.IntN(4) == 0 {
		m.ControlPlane = &core.ControlPlane{Identifier: "sluice"}
	}
	for i := range rng.IntN(20) {
		r := &discovery.Resource{Name: fmt.Sprintf("r%d", i), Version: fmt.Sprint(rng.Uint64())}
		if rng.IntN(6) != 0 {
			r.Resource = randomAny(rng)
		}
		if rng.IntN(5) == 0 {
			r.Aliases = []string{"alias"}
			r.Ttl = durationpb.New(7)
		}
		m.Resources = append(m.Resources, r)
	}
	return m
}

func randomSotWResponse(rng *rand.Rand) *discovery.DiscoveryResponse {
	m := &discovery.DiscoveryResponse{VersionInfo: fmt.Sprint(rng.Uint64()), TypeUrl: resourcev3.ClusterType,
		Nonce: fmt.Sprint(rng.IntN(1000)), Canary: rng.IntN(2) == 0}
	for range rng.IntN(20) {
		m.Resources = append(m.Resources, randomAny(rng))
	}
	return m
}

// decodeSliced parses what the codec produced, as a proxy would.
func decodeSliced(t *testing.T, b mem.BufferSlice, into proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b.Materialize(), into); err != nil {
		t.Fatalf("parse the codec's output: %v", err)
	}
}

// borrowedAll reports whether every value in values the codec borrows
// (copyBelow bytes or more) is one of the buffers of b itself, not a copy.
func borrowedAll(b mem.BufferSlice, values [][]byte) bool {
	pieces := map[*byte]bool{}
	for _, buf := range b {
		if d := buf.ReadOnlyData(); len(d) > 0 {
			pieces[unsafe.SliceData(d)] = true
		}
	}
	for _, v := range values {
		if len(v) >= copyBelow && !pieces[unsafe.SliceData(v)] {
			return false
		}
	}
	return true
}

func TestCodecSplicedResponsesParseAsMarshalled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		dm := randomDeltaResponse(rng)
		want := proto.Clone(dm)
		b, err := codec{}.Marshal(dm)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(dm, want) {
			t.Fatalf("case %d: Marshal changed the delta response", i)
		}
		if b.Len() != proto.Size(dm) {
			t.Fatalf("case %d: delta response is %d bytes, proto.Size says %d", i, b.Len(), proto.Size(dm))
		}
		got := &discovery.DeltaDiscoveryResponse{}
		decodeSliced(t, b, got)
		if !proto.Equal(got, want) {
			t.Fatalf("case %d: delta response parsed as\n%v\nwant\n%v", i, got, want)
		}
		var values [][]byte
		for _, r := range dm.Resources {
			values = append(values, r.GetResource().GetValue())
		}
		if !borrowedAll(b, values) {
			t.Fatalf("case %d: a resource's bytes were copied into the delta response", i)
		}

		sm := randomSotWResponse(rng)
		wantS := proto.Clone(sm)
		if b, err = (codec{}).Marshal(sm); err != nil {
			t.Fatal(err)
		}
		gotS := &discovery.DiscoveryResponse{}
		decodeSliced(t, b, gotS)
		if !proto.Equal(gotS, wantS) || !proto.Equal(sm, wantS) {
			t.Fatalf("case %d: SotW response parsed as\n%v\nwant\n%v", i, gotS, wantS)
		}
		values = values[:0]
		for _, a := range sm.Resources {
			values = append(values, a.GetValue())
		}
		if !borrowedAll(b, values) {
			t.Fatalf("case %d: a resource's bytes were copied into the SotW response", i)
		}
	}
}

// BenchmarkCodecDeltaResponse compares a 1,000-resource response
// marshalled with its resources borrowed against proto.Marshal's copy.
func BenchmarkCodecDeltaResponse(b *testing.B) {
	m := &discovery.DeltaDiscoveryResponse{SystemVersionInfo: "v", TypeUrl: resourcev3.ClusterType, Nonce: "1"}
	for i := range 1000 {
		m.Resources = append(m.Resources, &discovery.Resource{Name: fmt.Sprintf("outbound|80||svc-%d.ns.svc.cluster.local", i),
			Version: "0123456789abcdef", Resource: &anypb.Any{TypeUrl: resourcev3.ClusterType, Value: make([]byte, 600)}})
	}
	b.Run("spliced", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (codec{}).Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
