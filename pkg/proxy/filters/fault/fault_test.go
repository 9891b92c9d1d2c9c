package fault

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func all() *typev3.FractionalPercent { return &typev3.FractionalPercent{Numerator: 100} }

func compile(t *testing.T, hf *faultv3.HTTPFault) *Config {
	t.Helper()
	a, err := anypb.New(hf)
	if err != nil {
		t.Fatal(err)
	}
	c, err := CompilePerRoute(a)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDecode: an abort is answered by the filter with Envoy's body, flag
// FI and the counter; a delay holds the request, flags DI and lets it go
// on; a client leaving during the delay ends the request (DC).
func TestDecode(t *testing.T) {
	abort := compile(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{Percentage: all(),
		ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418}}})
	var st Stats
	var info httpfilter.RequestInfo
	w := httptest.NewRecorder()
	if !abort.Decode(w, httptest.NewRequest("GET", "/", nil), "r1", &st, &info) {
		t.Fatal("an abort at 100% must answer")
	}
	if w.Code != 418 || !strings.Contains(w.Body.String(), "fault filter abort") || info.Flags != httpfilter.FlagFI || st.AbortsInjected.Load() != 1 {
		t.Errorf("abort: %d %q flags %v aborts %d", w.Code, w.Body.String(), info.Flags, st.AbortsInjected.Load())
	}

	delay := compile(t, &faultv3.HTTPFault{Delay: &faultcommon.FaultDelay{Percentage: all(),
		FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(50 * time.Millisecond)}}})
	info = httpfilter.RequestInfo{}
	start := time.Now()
	if delay.Decode(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "r2", &st, &info) {
		t.Fatal("a delay alone must let the request go on")
	}
	if took := time.Since(start); took < 50*time.Millisecond || info.Flags != httpfilter.FlagDI || st.DelaysInjected.Load() != 1 {
		t.Errorf("delay: took %v flags %v delays %d", took, info.Flags, st.DelaysInjected.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	info = httpfilter.RequestInfo{}
	if !delay.Decode(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx), "r2", &st, &info) || !info.Flags.Has(httpfilter.FlagDC) {
		t.Errorf("client gone during the delay: flags %v", info.Flags)
	}
}

// TestCheckListenerConfig: Istio's empty listener-level config passes; a
// listener-wide fault is rejected rather than ignored.
func TestCheckListenerConfig(t *testing.T) {
	empty, _ := anypb.New(&faultv3.HTTPFault{})
	if err := CheckListenerConfig(empty); err != nil {
		t.Errorf("empty: %v", err)
	}
	wide, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{Percentage: all(), ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}}})
	if err := CheckListenerConfig(wide); err == nil {
		t.Error("a listener-wide abort was accepted")
	}
}
