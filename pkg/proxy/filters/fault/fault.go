// Package fault is Envoy's fault injection HTTP filter
// (envoy.filters.http.fault, source/extensions/filters/http/fault): its
// listener-level config check, the per-route config it compiles from
// typed_per_filter_config, its counters, and what it does to a request.
package fault

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// Name is the filter's name, as Envoy registers it.
const Name = "envoy.filters.http.fault"

// Stats are the filter's counters per connection manager
// (http.<stat_prefix>.fault.delays_injected / aborts_injected).
type Stats struct {
	DelaysInjected atomic.Uint64
	AbortsInjected atomic.Uint64
}

// Config is a compiled envoy.filters.http.fault per-route config.
type Config struct {
	HasDelay     bool
	Delay        time.Duration
	DelayPercent httpfilter.Fraction

	HasAbort     bool
	AbortPercent httpfilter.Fraction
	// AbortStatus is the HTTP status of an abort; for gRPC aborts it is
	// 200 and AbortGRPC holds the grpc-status (-1 for HTTP aborts).
	AbortStatus int
	AbortGRPC   int
	AbortBody   string
}

// CompilePerRoute compiles a route's or virtual host's
// typed_per_filter_config for the filter: an HTTPFault, possibly wrapped in
// a FilterConfig (disabled: no fault). Nil means no fault.
func CompilePerRoute(a *anypb.Any) (*Config, error) {
	var fc route.FilterConfig
	if a.MessageIs(&fc) {
		if err := a.UnmarshalTo(&fc); err != nil {
			return nil, err
		}
		if fc.Disabled {
			return nil, nil
		}
		a = fc.Config
		if a == nil {
			return nil, nil
		}
	}
	var hf faultv3.HTTPFault
	if err := a.UnmarshalTo(&hf); err != nil {
		return nil, err
	}
	return Compile(&hf)
}

// Compile compiles an HTTPFault. Nil means the config injects
// nothing. Runtime keys are accepted: sluice has no runtime, so their
// defaults (the configured values) apply, as in an Envoy without overrides.
func Compile(hf *faultv3.HTTPFault) (*Config, error) {
	if err := hf.ValidateAll(); err != nil {
		return nil, err
	}
	if len(hf.Headers) > 0 || len(hf.DownstreamNodes) > 0 || hf.UpstreamCluster != "" {
		return nil, fmt.Errorf("headers, downstream_nodes and upstream_cluster conditions are not supported")
	}
	if hf.MaxActiveFaults != nil || hf.ResponseRateLimit != nil {
		return nil, fmt.Errorf("max_active_faults and response_rate_limit are not supported")
	}
	if hf.Delay == nil && hf.Abort == nil {
		return nil, nil
	}
	f := &Config{AbortGRPC: -1}
	if d := hf.Delay; d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, fmt.Errorf("delay: only fixed_delay is supported")
		}
		f.HasDelay, f.Delay, f.DelayPercent = true, fd.AsDuration(), httpfilter.CompileFraction(d.Percentage)
	}
	if a := hf.Abort; a != nil {
		f.HasAbort, f.AbortPercent, f.AbortBody = true, httpfilter.CompileFraction(a.Percentage), a.ResponseBody
		switch et := a.ErrorType.(type) {
		case *faultv3.FaultAbort_HttpStatus:
			f.AbortStatus = int(et.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			f.AbortStatus, f.AbortGRPC = http.StatusOK, int(et.GrpcStatus)
		default:
			return nil, fmt.Errorf("abort: only http_status and grpc_status are supported")
		}
	}
	return f, nil
}

// CheckListenerConfig accepts the listener-level config of the fault filter:
// empty (Istio's), with faults only coming from the routes. A listener-wide
// fault would apply to routes without their own; sluice rejects it rather
// than ignore it.
func CheckListenerConfig(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	var hf faultv3.HTTPFault
	if err := a.UnmarshalTo(&hf); err != nil {
		return err
	}
	f, err := Compile(&hf)
	if err != nil {
		return err
	}
	if f != nil {
		return fmt.Errorf("a listener-wide delay or abort is not supported; put faults on routes")
	}
	return nil
}

// faultAbortReason is Envoy's body for an injected abort.
const faultAbortReason = "fault filter abort"

// Decode applies a route's fault the way Envoy's fault filter does,
// before the route's action: first the delay (for its percentage of
// requests), then the abort (for its percentage), answered by the proxy
// without contacting any upstream. It runs once per request, so a fault is
// never retried. It reports whether the request has been answered (an
// abort, or the client leaving during the delay).
func (f *Config) Decode(w http.ResponseWriter, r *http.Request, route string, st *Stats, info *httpfilter.RequestInfo) bool {
	if f.HasDelay && f.DelayPercent.Sample(rand.Uint64()) {
		info.Flags |= httpfilter.FlagDI
		st.DelaysInjected.Add(1)
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			info.Flags |= httpfilter.FlagDC
			info.Status = 499
			w.WriteHeader(499) // nobody reads it; Envoy logs 0/DC
			return true
		}
	}
	if f.HasAbort && f.AbortPercent.Sample(rand.Uint64()) {
		info.Flags |= httpfilter.FlagFI
		st.AbortsInjected.Add(1)
		reason := faultAbortReason + ": route " + route
		if f.AbortGRPC >= 0 {
			// A gRPC abort is a trailers-only gRPC answer, as Envoy's local
			// reply for gRPC requests.
			hdr := w.Header()
			hdr.Set("Content-Type", "application/grpc")
			hdr.Set("Grpc-Status", strconv.Itoa(f.AbortGRPC))
			hdr.Set("Grpc-Message", faultAbortReason)
			hdr.Set("X-Sluice-Reason", reason)
			hdr.Set(httpfilter.ResponseFlagsHeader, info.Flags.String())
			info.Status = http.StatusOK
			w.WriteHeader(http.StatusOK)
			return true
		}
		body := reason
		if f.AbortBody != "" {
			body = f.AbortBody
		}
		httpfilter.LocalReply(w, info, f.AbortStatus, 0, reason, body)
		return true
	}
	return false
}
