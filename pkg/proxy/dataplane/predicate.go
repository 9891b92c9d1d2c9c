package dataplane

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// PortPredicate is a compiled ListenerFilterChainMatchPredicate, a
// listener filter's filter_disabled: the filter does not run on a
// connection it matches. Envoy's rules are on the destination port (the
// restored one after original_dst): destination_port_range [start, end),
// any_match, and or/and/not of rules. Istio disables the inspectors so on
// the virtual inbound ports that need none (listener_inbound.go
// listenerPredicateExcludePorts), e.g. server-first protocols.
type PortPredicate struct {
	kind       predicateKind
	subs       []*PortPredicate
	start, end uint32
}

type predicateKind uint8

const (
	predicateAny predicateKind = iota
	predicateRange
	predicateOr
	predicateAnd
	predicateNot
)

// Match reports whether port matches (a nil predicate matches nothing:
// the filter always runs).
func (p *PortPredicate) Match(port uint32) bool {
	if p == nil {
		return false
	}
	switch p.kind {
	case predicateAny:
		return true
	case predicateRange:
		return port >= p.start && port < p.end
	case predicateOr:
		for _, s := range p.subs {
			if s.Match(port) {
				return true
			}
		}
		return false
	case predicateAnd:
		for _, s := range p.subs {
			if !s.Match(port) {
				return false
			}
		}
		return true
	default: // predicateNot
		return !p.subs[0].Match(port)
	}
}

// compilePredicate compiles filter_disabled; a rule sluice does not know
// is refused.
func compilePredicate(p *listener.ListenerFilterChainMatchPredicate) (*PortPredicate, error) {
	switch r := p.GetRule().(type) {
	case *listener.ListenerFilterChainMatchPredicate_AnyMatch:
		if !r.AnyMatch {
			return nil, fmt.Errorf("any_match: must be true")
		}
		return &PortPredicate{kind: predicateAny}, nil
	case *listener.ListenerFilterChainMatchPredicate_DestinationPortRange:
		start, end := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if start < 0 || end < start {
			return nil, fmt.Errorf("destination_port_range [%d, %d): not a port range", start, end)
		}
		return &PortPredicate{kind: predicateRange, start: uint32(start), end: uint32(end)}, nil
	case *listener.ListenerFilterChainMatchPredicate_NotMatch:
		sub, err := compilePredicate(r.NotMatch)
		if err != nil {
			return nil, fmt.Errorf("not_match: %w", err)
		}
		return &PortPredicate{kind: predicateNot, subs: []*PortPredicate{sub}}, nil
	case *listener.ListenerFilterChainMatchPredicate_OrMatch:
		return compileSet(predicateOr, "or_match", r.OrMatch.GetRules())
	case *listener.ListenerFilterChainMatchPredicate_AndMatch:
		return compileSet(predicateAnd, "and_match", r.AndMatch.GetRules())
	}
	return nil, fmt.Errorf("rule %T: not supported", p.GetRule())
}

func compileSet(kind predicateKind, name string, rules []*listener.ListenerFilterChainMatchPredicate) (*PortPredicate, error) {
	out := &PortPredicate{kind: kind}
	for i, r := range rules {
		sub, err := compilePredicate(r)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", name, i, err)
		}
		out.subs = append(out.subs, sub)
	}
	return out, nil
}
