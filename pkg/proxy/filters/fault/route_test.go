package fault_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	routes "github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// Tests of the filter's per-route compile, through the route table's
// compile as the proxy runs it.

type Fraction = httpfilter.Fraction

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func prefix(p string) *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: p}}
}

func fwd(name, cluster string, m *route.RouteMatch) *route.Route {
	return &route.Route{Name: name, Match: m, Action: &route.Route_Route{Route: &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster}}}}
}

func compileOne(vh *route.VirtualHost) (*routes.Route, error) {
	vh.Name, vh.Domains = "vh", []string{"*"}
	tbl, err := routes.Compile(&route.RouteConfiguration{Name: "t", VirtualHosts: []*route.VirtualHost{vh}})
	if err != nil {
		return nil, err
	}
	return tbl.VirtualHost("any").Routes[0], nil
}

func TestCompileFault(t *testing.T) {
	hf := &faultv3.HTTPFault{
		Delay: &faultcommon.FaultDelay{FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)},
			Percentage: &typev3.FractionalPercent{Numerator: 50}},
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
			Percentage: &typev3.FractionalPercent{Numerator: 125000, Denominator: typev3.FractionalPercent_MILLION}},
	}
	r := fwd("r", "c", prefix("/"))
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, hf)}
	cr, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}})
	if err != nil {
		t.Fatal(err)
	}
	f := fault.PerRoute(cr)
	if f == nil || !f.HasDelay || f.Delay != 2*time.Second || f.DelayPercent != (Fraction{Numerator: 50, Denominator: 100}) ||
		!f.HasAbort || f.AbortStatus != 503 || f.AbortGRPC != -1 || f.AbortPercent != (Fraction{Numerator: 125000, Denominator: 1_000_000}) {
		t.Fatalf("compiled %+v", f)
	}

	// An unset percentage is 0%, as in Envoy: such a fault never fires.
	grpc := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}}}
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, grpc)}
	cr, err = compileOne(&route.VirtualHost{Routes: []*route.Route{r}})
	if err != nil {
		t.Fatal(err)
	}
	if f := fault.PerRoute(cr); f.AbortGRPC != 14 || f.AbortStatus != 200 || f.AbortPercent.Numerator != 0 {
		t.Fatalf("gRPC abort compiled %+v", f)
	}
	for i := range 1000 {
		if fault.PerRoute(cr).AbortPercent.Sample(rand.Uint64()) {
			t.Fatalf("an abort without a percentage fired (sample %d)", i)
		}
	}

	// Wrapped in FilterConfig, and disabled.
	fc := &route.FilterConfig{Config: mustAny(t, hf), Disabled: true}
	r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, fc)}
	if cr, err = compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err != nil || fault.PerRoute(cr) != nil {
		t.Fatalf("disabled fault: %v %+v", err, cr)
	}

	for name, bad := range map[string]proto.Message{
		"max active faults": &faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1), Abort: hf.Abort},
		"header condition":  &faultv3.HTTPFault{Abort: hf.Abort, Headers: []*route.HeaderMatcher{{Name: "x"}}},
		"header abort":      &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}}},
		"header delay":      &faultv3.HTTPFault{Delay: &faultcommon.FaultDelay{FaultDelaySecifier: &faultcommon.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommon.FaultDelay_HeaderDelay{}}}},
		"other filter":      &structpb.Struct{},
	} {
		r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, bad)}
		if name == "other filter" {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, bad)}
		}
		if _, err := compileOne(&route.VirtualHost{Routes: []*route.Route{r}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := fault.CheckListenerConfig(mustAny(t, &faultv3.HTTPFault{})); err != nil {
		t.Errorf("Istio's empty listener-level fault filter: %v", err)
	}
	if err := fault.CheckListenerConfig(mustAny(t, hf)); err == nil || !strings.Contains(err.Error(), "listener-wide") {
		t.Errorf("a listener-wide fault must be rejected: %v", err)
	}
}
