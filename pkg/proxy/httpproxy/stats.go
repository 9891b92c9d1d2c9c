package httpproxy

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
)

// Stats are the request path's counters that belong to no cluster:
// response flags, fault injections and CORS per connection manager (by
// stat prefix), and mirroring. They are kept for the proxy's lifetime,
// across config pushes. A cluster's counters (cluster.<name>.*, retry
// outcomes and per-try timeouts included) are its upstream.Stats.
type Stats struct {
	mu        sync.RWMutex
	listeners map[string]*ListenerStats
	Mirror    MirrorStats
}

// ListenerStats are one connection manager's counters
// (http.<stat_prefix>.*).
type ListenerStats struct {
	// ResponseFlags counts requests by response flag (a request with two
	// flags counts in both).
	ResponseFlags [numFlags]atomic.Uint64
	// Fault are the fault filter's counters.
	Fault fault.Stats
	// CORS are the CORS filter's counters.
	CORS cors.Stats
}

// MirrorStats count shadow requests (sluice.mirror.*).
type MirrorStats struct {
	Sent             atomic.Uint64 // copies sent
	Failed           atomic.Uint64 // copies that got no answer
	DroppedOverflow  atomic.Uint64 // refused by the mirror cluster's circuit breakers
	DroppedBody      atomic.Uint64 // the body was too large or not fully read
	DroppedNoCluster atomic.Uint64 // the mirror cluster does not exist
}

// NewStats makes empty counters.
func NewStats() *Stats {
	return &Stats{listeners: map[string]*ListenerStats{}}
}

// Listener returns the counters of a connection manager by stat prefix.
func (s *Stats) Listener(prefix string) *ListenerStats {
	s.mu.RLock()
	ls := s.listeners[prefix]
	s.mu.RUnlock()
	if ls != nil {
		return ls
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls = s.listeners[prefix]; ls == nil {
		ls = &ListenerStats{}
		s.listeners[prefix] = ls
	}
	return ls
}

// countFlags adds a finished request's flags to its listener's counters.
func (ls *ListenerStats) countFlags(f Flags) {
	for i := 0; f != 0 && i < numFlags; i++ {
		if f&(1<<i) != 0 {
			ls.ResponseFlags[i].Add(1)
			f &^= 1 << i
		}
	}
}

// WriteText writes the counters as "name: value" lines, sorted by name
// within each group, as Envoy's /stats does.
func (s *Stats) WriteText(w io.Writer) {
	s.mu.RLock()
	prefixes := slices.Sorted(maps.Keys(s.listeners))
	s.mu.RUnlock()
	for _, p := range prefixes {
		ls := s.Listener(p)
		fmt.Fprintf(w, "http.%s.cors.origin_invalid: %d\n", p, ls.CORS.OriginInvalid.Load())
		fmt.Fprintf(w, "http.%s.cors.origin_valid: %d\n", p, ls.CORS.OriginValid.Load())
		fmt.Fprintf(w, "http.%s.fault.aborts_injected: %d\n", p, ls.Fault.AbortsInjected.Load())
		fmt.Fprintf(w, "http.%s.fault.delays_injected: %d\n", p, ls.Fault.DelaysInjected.Load())
		names := make([]int, 0, numFlags)
		for i := range numFlags {
			names = append(names, i)
		}
		sort.Slice(names, func(a, b int) bool { return FlagName(names[a]) < FlagName(names[b]) })
		for _, i := range names {
			if n := ls.ResponseFlags[i].Load(); n > 0 {
				fmt.Fprintf(w, "http.%s.response_flags.%s: %d\n", p, FlagName(i), n)
			}
		}
	}
	m := &s.Mirror
	fmt.Fprintf(w, "sluice.mirror.dropped_body: %d\n", m.DroppedBody.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_no_cluster: %d\n", m.DroppedNoCluster.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_overflow: %d\n", m.DroppedOverflow.Load())
	fmt.Fprintf(w, "sluice.mirror.failed: %d\n", m.Failed.Load())
	fmt.Fprintf(w, "sluice.mirror.sent: %d\n", m.Sent.Load())
}
