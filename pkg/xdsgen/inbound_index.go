package xdsgen

import (
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// endpointHit is one endpoint of a service port, for inbound lookups.
type endpointHit struct {
	svc  *registry.Service
	port registry.Port
	addr string
}

// endpointIndex finds the service ports with an endpoint at an inbound
// address, in the order a scan of push.Services(), their ports and
// endpoints meets them: by endpoint port (for a wildcard host) and by
// address and port.
type endpointIndex struct {
	byPort map[uint32][]endpointHit
	byAddr map[addrPort][]endpointHit
}

type addrPort struct {
	addr string
	port uint32
}

// endpointHits are the service ports with an endpoint at host:port (a
// wildcard host takes any address), in scan order: from the Generator's
// index, built once per push, or by a scan (no Generator, or its first
// proxy).
func (g *generation) endpointHits(host string, port uint32) []endpointHit {
	wildcard := host == "0.0.0.0" || host == "::"
	// The index costs a pass over every endpoint: worth it from the
	// second proxy of a push on.
	if g.gen == nil || g.gen.generated.Load() < 2 {
		var out []endpointHit
		for _, svc := range g.push.Services() {
			for _, p := range svc.Ports {
				for _, ep := range g.push.Endpoints(svc, p.Number) {
					if ep.Port == port && (wildcard || ep.Address == host) {
						out = append(out, endpointHit{svc: svc, port: p, addr: ep.Address})
					}
				}
			}
		}
		return out
	}
	idx, _ := g.gen.inbound.get(struct{}{}, func() (*endpointIndex, error) {
		idx := &endpointIndex{byPort: map[uint32][]endpointHit{}, byAddr: map[addrPort][]endpointHit{}}
		for _, svc := range g.push.Services() {
			for _, p := range svc.Ports {
				for _, ep := range g.push.Endpoints(svc, p.Number) {
					h := endpointHit{svc: svc, port: p, addr: ep.Address}
					idx.byPort[ep.Port] = append(idx.byPort[ep.Port], h)
					k := addrPort{ep.Address, ep.Port}
					idx.byAddr[k] = append(idx.byAddr[k], h)
				}
			}
		}
		return idx, nil
	})
	if wildcard {
		return idx.byPort[port]
	}
	return idx.byAddr[addrPort{host, port}]
}
