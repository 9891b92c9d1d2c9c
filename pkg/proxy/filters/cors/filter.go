package cors

import (
	"fmt"
	"io"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// The filter as the connection manager runs it: registered under Envoy's
// name and config type, its per-route policy in the route's slot, its
// counters per connection manager.

var slot = httpfilter.Register(factory{})

type factory struct{}

func (factory) Name() string { return Name }

func (factory) ConfigType() string {
	return string((&corsv3.Cors{}).ProtoReflect().Descriptor().FullName())
}

func (factory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	if err := CheckListenerConfig(cfg); err != nil {
		return nil, err
	}
	return filter{}, nil
}

// CompilePerRoute compiles the route's policy from its and its virtual
// host's typed_per_filter_config, or the deprecated cors fields of the
// route action and the virtual host.
func (factory) CompilePerRoute(in *httpfilter.PerRouteInput) (any, error) {
	r, vh := in.Route, in.VirtualHost
	var legacy []PolicyConfig
	if c := r.GetRoute().GetCors(); c != nil { //nolint:staticcheck // deprecated, still honoured by Envoy
		legacy = append(legacy, c)
	}
	if c := vh.GetCors(); c != nil { //nolint:staticcheck
		legacy = append(legacy, c)
	}
	p, err := CompilePerRoute([]*anypb.Any{r.TypedPerFilterConfig[Name], vh.TypedPerFilterConfig[Name]}, legacy)
	if err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	if p == nil {
		return nil, nil
	}
	return p, nil
}

func (factory) NewListenerStats() httpfilter.Stats { return &Stats{} }

// WriteText writes the counters (http.<stat_prefix>.cors.*).
func (s *Stats) WriteText(w io.Writer, prefix string) {
	fmt.Fprintf(w, "http.%s.cors.origin_invalid: %d\n", prefix, s.OriginInvalid.Load())
	fmt.Fprintf(w, "http.%s.cors.origin_valid: %d\n", prefix, s.OriginValid.Load())
}

type filter struct{}

// Decode runs the route's policy, if it has one.
func (filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	p, _ := s.Route.FilterConfig(slot).(*Policy)
	if p == nil {
		return httpfilter.Continue
	}
	w, answered := p.Decode(s.W, s.R, s.Listener.Filter(slot).(*Stats), &s.Info)
	s.W = w
	if answered {
		return httpfilter.Answered
	}
	return httpfilter.Continue
}

// PerRoute is the policy compiled for a route (nil: none), for tests and
// tools reading a compiled route.
func PerRoute(r httpfilter.Route) *Policy { p, _ := r.FilterConfig(slot).(*Policy); return p }
