package main

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

func knownType(t string) bool {
	return t == clusterType || t == listenerType || t == endpointType || t == routeType || t == vhostType
}

// handle applies one response to the proxy's view (SotW: the response is
// the whole type; Delta: previous view + resources - removed), accounts it
// to the current measurement phase and returns the EDS/RDS names the view
// now refers to, when they may have changed.
func (p *simProxy) handle(typeURL string, items []item, removed []string, sotw bool, size int) (map[string][]string, error) {
	now := time.Now()
	p.opts.Activity.Store(now.UnixNano())
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.opts.Watch.Load()
	if w != nil && !now.Before(w.start) {
		if p.phase.w != w {
			p.phase = phaseStats{w: w, first: now}
		}
		p.phase.bytes += int64(size)
		p.phase.responses++
	} else {
		w = nil
	}
	if sotw {
		p.reset(typeURL)
	}
	for _, it := range items {
		name, err := p.apply(typeURL, it.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", typeURL, err)
		}
		if it.name != "" && it.name != name {
			return nil, fmt.Errorf("%s: resource %q sent under the name %q", typeURL, name, it.name)
		}
		if w != nil && p.phase.got.IsZero() && (typeURL == w.typeURL || (w.alsoVHDS && typeURL == vhostType)) {
			ok, err := w.match(typeURL, name, it.value)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", typeURL, name, err)
			}
			if ok {
				p.phase.got = now
			}
		}
	}
	for _, name := range removed {
		switch typeURL {
		case clusterType:
			delete(p.clusters, name)
		case listenerType:
			delete(p.listeners, name)
		case routeType:
			delete(p.held[typeURL], name)
			delete(p.vhds, name)
		default:
			delete(p.held[typeURL], name)
		}
	}
	switch typeURL {
	case clusterType:
		return map[string][]string{endpointType: p.wanted(endpointType)}, nil
	case listenerType:
		return map[string][]string{routeType: p.wanted(routeType)}, nil
	case routeType:
		return map[string][]string{vhostType: p.wanted(vhostType)}, nil
	case vhostType:
		for _, n := range p.vhdsAsked {
			p.vhdsAnswered[n] = true
		}
	}
	return nil, nil
}

func (p *simProxy) reset(typeURL string) {
	switch typeURL {
	case clusterType:
		clear(p.clusters)
	case listenerType:
		clear(p.listeners)
	case routeType:
		clear(p.held[typeURL])
		clear(p.vhds)
	default:
		clear(p.held[typeURL])
	}
}

// apply records one resource and returns its name.
func (p *simProxy) apply(typeURL string, b []byte) (string, error) {
	switch typeURL {
	case clusterType:
		name, eds, err := clusterEDSName(b)
		if err == nil {
			p.clusters[name] = eds
		}
		return name, err
	case listenerType:
		name, routes, err := listenerRoutes(b)
		if err == nil {
			p.listeners[name] = routes
		}
		return name, err
	case routeType:
		name, vhds, err := routeVHDS(b)
		if err == nil {
			p.held[typeURL][name] = true
			if vhds {
				p.vhds[name] = true
			} else {
				delete(p.vhds, name)
			}
		}
		return name, err
	default:
		name, err := resourceName(b)
		if err == nil {
			p.held[typeURL][name] = true
		}
		return name, err
	}
}

// wanted lists, sorted, the EDS, RDS or VHDS names the view refers to
// (VHDS: the route configurations whose virtual hosts come by VHDS).
func (p *simProxy) wanted(typeURL string) []string {
	set := map[string]bool{}
	if typeURL == vhostType {
		return slices.Sorted(maps.Keys(p.vhds))
	}
	if typeURL == endpointType {
		for _, eds := range p.clusters {
			if eds != "" {
				set[eds] = true
			}
		}
	} else {
		for _, routes := range p.listeners {
			for _, r := range routes {
				set[r] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// checkReady notes the moment the proxy has ACKed CDS and LDS and holds,
// ACKed, every endpoint and route configuration they name.
func (p *simProxy) checkReady() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready.IsZero() || !p.acked[clusterType] || !p.acked[listenerType] {
		return
	}
	for _, t := range []string{endpointType, routeType} {
		names := p.wanted(t)
		if len(names) > 0 && !p.acked[t] {
			return
		}
		for _, n := range names {
			if !p.held[t][n] {
				return
			}
		}
	}
	for n := range p.vhds {
		if !p.vhdsAnswered[n] {
			return
		}
	}
	p.ready = time.Now()
}

// readiness returns how long the proxy took from connecting to ready.
func (p *simProxy) readiness() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready.IsZero() {
		return 0, false
	}
	return p.ready.Sub(p.start), true
}

// edsName is the EDS resource name of a cluster in the proxy's view.
func (p *simProxy) edsName(cluster string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.clusters[cluster]
	return n, ok
}

// holdsCluster reports whether the proxy's CDS view has the cluster.
func (p *simProxy) holdsCluster(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.clusters[name]
	return ok
}

// stats returns what the proxy saw during w.
func (p *simProxy) stats(w *watch) phaseStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phase.w != w {
		return phaseStats{}
	}
	return p.phase
}

func (p *simProxy) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
