package httpproxy

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
)

// Stats are the request path's counters that are not kept per host:
// response flags and fault injections per connection manager (by stat
// prefix), route-level upstream counters per cluster (retry outcomes,
// per-try timeouts), and mirroring. They are kept for the proxy's
// lifetime, across config pushes. Only requests that set a flag, retry or
// mirror touch them, so the plain request path never takes their lock.
type Stats struct {
	mu        sync.RWMutex
	listeners map[string]*ListenerStats
	clusters  map[string]*ClusterStats
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

// ClusterStats are a cluster's route-level counters, named as Envoy names
// them (cluster.<name>.*). upstream_rq_retry and upstream_rq_retry_overflow
// belong to the cluster's own stats, where its retry budget counts them.
type ClusterStats struct {
	RetrySuccess       atomic.Uint64 // upstream_rq_retry_success
	RetryLimitExceeded atomic.Uint64 // upstream_rq_retry_limit_exceeded
	PerTryTimeout      atomic.Uint64 // upstream_rq_per_try_timeout
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
	return &Stats{listeners: map[string]*ListenerStats{}, clusters: map[string]*ClusterStats{}}
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

// Cluster returns a cluster's route-level counters.
func (s *Stats) Cluster(name string) *ClusterStats {
	s.mu.RLock()
	cs := s.clusters[name]
	s.mu.RUnlock()
	if cs != nil {
		return cs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs = s.clusters[name]; cs == nil {
		cs = &ClusterStats{}
		s.clusters[name] = cs
	}
	return cs
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
	prefixes := sortedKeys(s.listeners)
	clusters := sortedKeys(s.clusters)
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
	for _, c := range clusters {
		cs := s.Cluster(c)
		fmt.Fprintf(w, "cluster.%s.upstream_rq_per_try_timeout: %d\n", c, cs.PerTryTimeout.Load())
		fmt.Fprintf(w, "cluster.%s.upstream_rq_retry_limit_exceeded: %d\n", c, cs.RetryLimitExceeded.Load())
		fmt.Fprintf(w, "cluster.%s.upstream_rq_retry_success: %d\n", c, cs.RetrySuccess.Load())
	}
	m := &s.Mirror
	fmt.Fprintf(w, "sluice.mirror.dropped_body: %d\n", m.DroppedBody.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_no_cluster: %d\n", m.DroppedNoCluster.Load())
	fmt.Fprintf(w, "sluice.mirror.dropped_overflow: %d\n", m.DroppedOverflow.Load())
	fmt.Fprintf(w, "sluice.mirror.failed: %d\n", m.Failed.Load())
	fmt.Fprintf(w, "sluice.mirror.sent: %d\n", m.Sent.Load())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
