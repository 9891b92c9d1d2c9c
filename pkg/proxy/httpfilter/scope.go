package httpfilter

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Stats are a filter's counters, kept for the proxy's lifetime across
// config pushes, as Envoy's stats store keeps them by name.
type Stats interface {
	// WriteText writes the counters as "name: value" lines sorted by
	// name; prefix is the connection manager's stat prefix for
	// per-listener counters ("" for proxy-wide ones).
	WriteText(w io.Writer, prefix string)
}

// ListenerStatsFactory is implemented by factories whose filter counts
// per connection manager (http.<stat_prefix>.<filter>.*).
type ListenerStatsFactory interface{ NewListenerStats() Stats }

// ProxyStatsFactory is implemented by factories whose filter keeps
// proxy-wide counters or state (the router's sluice.mirror.*).
type ProxyStatsFactory interface{ NewProxyStats() Stats }

// Scope is the proxy's request-path counters that belong to no cluster:
// per connection manager (by stat prefix) the response flags and each
// filter's counters, and each filter's proxy-wide ones. A cluster's
// counters are its upstream.Stats.
type Scope struct {
	mu        sync.RWMutex
	listeners map[string]*ListenerScope
	proxy     []Stats // by slot; nil for filters without any
}

// ListenerScope is one connection manager's counters (http.<stat_prefix>.*).
type ListenerScope struct {
	// ResponseFlags counts requests by response flag (a request with two
	// flags counts in both).
	ResponseFlags [NumFlags]atomic.Uint64
	filters       []Stats // by slot
}

// NewScope makes empty counters for every registered filter.
func NewScope() *Scope {
	s := &Scope{listeners: map[string]*ListenerScope{}, proxy: make([]Stats, len(factories))}
	for i, f := range factories {
		if pf, ok := f.(ProxyStatsFactory); ok {
			s.proxy[i] = pf.NewProxyStats()
		}
	}
	return s
}

// Filter is the proxy-wide counters and state of the filter in slot (nil
// for none).
func (s *Scope) Filter(slot Slot) Stats { return s.proxy[slot] }

// Filter is the counters of the filter in slot (nil for none).
func (l *ListenerScope) Filter(slot Slot) Stats { return l.filters[slot] }

// Listener returns the counters of a connection manager by stat prefix.
func (s *Scope) Listener(prefix string) *ListenerScope {
	s.mu.RLock()
	ls := s.listeners[prefix]
	s.mu.RUnlock()
	if ls != nil {
		return ls
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls = s.listeners[prefix]; ls == nil {
		ls = &ListenerScope{filters: make([]Stats, len(factories))}
		for i, f := range factories {
			if lf, ok := f.(ListenerStatsFactory); ok {
				ls.filters[i] = lf.NewListenerStats()
			}
		}
		s.listeners[prefix] = ls
	}
	return ls
}

// CountFlags adds a finished request's flags to the counters.
func (l *ListenerScope) CountFlags(f Flags) {
	for i := 0; f != 0 && i < NumFlags; i++ {
		if f&(1<<i) != 0 {
			l.ResponseFlags[i].Add(1)
			f &^= 1 << i
		}
	}
}

// WriteText writes the counters as "name: value" lines, sorted by name
// within each group, as Envoy's /stats does: per connection manager the
// filters' counters (by filter name) and the response flags, then the
// proxy-wide ones.
func (s *Scope) WriteText(w io.Writer) {
	s.mu.RLock()
	prefixes := slices.Sorted(maps.Keys(s.listeners))
	s.mu.RUnlock()
	order := make([]int, len(factories))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return factories[order[a]].Name() < factories[order[b]].Name() })
	flags := make([]int, NumFlags)
	for i := range flags {
		flags[i] = i
	}
	sort.Slice(flags, func(a, b int) bool { return FlagName(flags[a]) < FlagName(flags[b]) })
	for _, p := range prefixes {
		ls := s.Listener(p)
		for _, i := range order {
			if st := ls.filters[i]; st != nil {
				st.WriteText(w, p)
			}
		}
		for _, i := range flags {
			if n := ls.ResponseFlags[i].Load(); n > 0 {
				fmt.Fprintf(w, "http.%s.response_flags.%s: %d\n", p, FlagName(i), n)
			}
		}
	}
	for _, i := range order {
		if st := s.proxy[i]; st != nil {
			st.WriteText(w, "")
		}
	}
}
