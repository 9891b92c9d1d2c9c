package fault

import (
	"fmt"
	"io"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// The filter as the connection manager runs it: registered under Envoy's
// name and config type, its per-route config in the route's slot, its
// counters per connection manager.

var slot = httpfilter.Register(factory{})

type factory struct{}

func (factory) Name() string { return Name }

func (factory) ConfigType() string {
	return string((&faultv3.HTTPFault{}).ProtoReflect().Descriptor().FullName())
}

func (factory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	if err := CheckListenerConfig(cfg); err != nil {
		return nil, err
	}
	return filter{}, nil
}

// CompilePerRoute takes the route's typed_per_filter_config for the
// filter, else its virtual host's (the most specific one replaces the
// other, as Envoy's FaultFilter reads the most specific per-route config).
func (factory) CompilePerRoute(in *httpfilter.PerRouteInput) (any, error) {
	a := in.Route.TypedPerFilterConfig[Name]
	if a == nil {
		a = in.VirtualHost.TypedPerFilterConfig[Name]
	}
	if a == nil {
		return nil, nil
	}
	c, err := CompilePerRoute(a)
	if err != nil || c == nil {
		if err != nil {
			err = fmt.Errorf("fault: %w", err)
		}
		return nil, err // a nil *Config must not become a non-nil any
	}
	return c, nil
}

func (factory) NewListenerStats() httpfilter.Stats { return &Stats{} }

// WriteText writes the counters (http.<stat_prefix>.fault.*).
func (s *Stats) WriteText(w io.Writer, prefix string) {
	fmt.Fprintf(w, "http.%s.fault.aborts_injected: %d\n", prefix, s.AbortsInjected.Load())
	fmt.Fprintf(w, "http.%s.fault.delays_injected: %d\n", prefix, s.DelaysInjected.Load())
}

type filter struct{}

// Decode applies the route's fault, if it has one.
func (filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	c, _ := s.Route.FilterConfig(slot).(*Config)
	if c == nil {
		return httpfilter.Continue
	}
	if c.Decode(s.W, s.R, s.Route.RouteName(), s.Listener.Filter(slot).(*Stats), &s.Info) {
		return httpfilter.Answered
	}
	return httpfilter.Continue
}

// PerRoute is the fault compiled for a route (nil: none), for tests and
// tools reading a compiled route.
func PerRoute(r httpfilter.Route) *Config { c, _ := r.FilterConfig(slot).(*Config); return c }
