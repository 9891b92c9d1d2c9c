package httpproxy

import (
	routerfilter "github.com/sluice-mesh/sluice/pkg/proxy/filters/router"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
)

// Stats are the request path's counters that belong to no cluster:
// response flags and each HTTP filter's counters per connection manager
// (by stat prefix), and the filters' proxy-wide ones (mirroring). They are
// kept for the proxy's lifetime, across config pushes. A cluster's
// counters (cluster.<name>.*, retry outcomes and per-try timeouts
// included) are its upstream.Stats.
type Stats = httpfilter.Scope

// NewStats makes empty counters.
func NewStats() *Stats { return httpfilter.NewScope() }

// Shared is the state every listener's handler of one proxy shares.
type Shared struct {
	Stats *Stats
	// Metrics are Istio's standard metrics (nil: none recorded, no
	// metadata exchange).
	Metrics *istiometrics.Metrics
	// Tracing is the proxy's span exporters (nil: New makes one reaching
	// collectors through the handler's runtime).
	Tracing *tracing.Env
}

// NewShared makes the shared state.
func NewShared() *Shared { return &Shared{Stats: NewStats()} }

// MirrorsInFlight is the number of shadow requests being sent.
func (s *Shared) MirrorsInFlight() int64 { return routerfilter.MirrorsInFlight(s.Stats) }
