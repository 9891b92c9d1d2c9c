package dataplane

import "github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"

// chainScope is a chain's counters in one proxy's Scope.
type chainScope struct {
	of *httpfilter.Scope
	ls *httpfilter.ListenerScope
}

// ListenerScope is the chain's counters (http.<StatPrefix>.*) in s,
// looked up by name on the chain's first request and then kept on the
// chain, so a request takes no lock and does no map lookup for them.
// Counters outlive chains (Scope keeps them across pushes), so a pushed
// chain with the same stat prefix finds the same ones.
func (c *FilterChain) ListenerScope(s *httpfilter.Scope) *httpfilter.ListenerScope {
	if cs := c.scope.Load(); cs != nil && cs.of == s {
		return cs.ls
	}
	ls := s.Listener(c.StatPrefix)
	c.scope.Store(&chainScope{of: s, ls: ls})
	return ls
}
