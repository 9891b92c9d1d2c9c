package httpfilter

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// testFactory is a filter known only to this test: registering it is all
// a filter needs to be looked up, compiled per route and counted.
type testFactory struct{}

type testStats struct{ n atomic.Uint64 }

func (s *testStats) WriteText(w io.Writer, prefix string) {
	fmt.Fprintf(w, "http.%s.test.seen: %d\n", prefix, s.n.Load())
}

type testFilter struct{}

func (testFilter) Decode(s *Stream) Status {
	s.Listener.Filter(testSlot).(*testStats).n.Add(1)
	if s.Route.FilterConfig(testSlot) != nil {
		return Answered
	}
	return Continue
}

func (testFactory) Name() string       { return "test.filter" }
func (testFactory) ConfigType() string { return "google.protobuf.Struct" }
func (testFactory) NewFilter(cfg *anypb.Any) (Filter, error) {
	return testFilter{}, nil
}
func (testFactory) CompilePerRoute(in *PerRouteInput) (any, error) {
	if a := in.Route.TypedPerFilterConfig["test.filter"]; a != nil {
		return a, nil
	}
	return nil, nil
}
func (testFactory) NewListenerStats() Stats { return &testStats{} }

var testSlot = Register(testFactory{})

type testRoute []any

func (testRoute) RouteName() string { return "r" }
func (r testRoute) FilterConfig(s Slot) any {
	if r == nil {
		return nil
	}
	return r[s]
}

func TestRegistry(t *testing.T) {
	cfg, _ := anypb.New(&structpb.Struct{})
	if f, ok := Lookup("any-name", cfg); !ok || f.Name() != "test.filter" {
		t.Fatalf("lookup by config type: %v %v", f, ok)
	}
	if f, ok := Lookup("test.filter", nil); !ok || f.Name() != "test.filter" {
		t.Fatalf("lookup by name: %v %v", f, ok)
	}
	if _, ok := Lookup("test.other", nil); ok {
		t.Fatal("an unregistered name was found")
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration of a name did not panic")
		}
	}()
	Register(testFactory{})
}

func TestPerRouteAndScope(t *testing.T) {
	cfg, _ := anypb.New(&structpb.Struct{})
	with, err := CompilePerRoute(&PerRouteInput{Route: &route.Route{TypedPerFilterConfig: map[string]*anypb.Any{"test.filter": cfg}}, VirtualHost: &route.VirtualHost{}})
	if err != nil || len(with) != Slots() || with[testSlot] == nil {
		t.Fatalf("per-route configs %v, %v", with, err)
	}
	without, err := CompilePerRoute(&PerRouteInput{Route: &route.Route{}, VirtualHost: &route.VirtualHost{}})
	if err != nil || without != nil {
		t.Fatalf("a route without config: %v, %v", without, err)
	}
	sc := NewScope()
	f, _ := Lookup("test.filter", nil)
	flt, _ := f.NewFilter(nil)
	s := &Stream{Route: testRoute(with), Listener: sc.Listener("in"), Proxy: sc}
	if flt.Decode(s) != Answered {
		t.Error("the route's config was not seen")
	}
	s.Route = testRoute(without)
	if flt.Decode(s) != Continue {
		t.Error("a route without config answered")
	}
	sc.Listener("in").CountFlags(FlagUF | FlagURX)
	var b bytes.Buffer
	sc.WriteText(&b)
	for _, want := range []string{"http.in.test.seen: 2\n", "http.in.response_flags.UF: 1\n", "http.in.response_flags.URX: 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, b.String())
		}
	}
	allocs := testing.AllocsPerRun(100, func() { _ = s.Route.FilterConfig(testSlot) })
	if allocs != 0 {
		t.Errorf("per-route lookup allocates %v times", allocs)
	}
}
