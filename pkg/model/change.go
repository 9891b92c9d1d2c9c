package model

import (
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/registry"
)

// ConfigKey names one config object: kind (as config.Kind names it),
// namespace and name. It is config.Key, so the keys filesource's
// Snapshot.Changed returns are ConfigKeys.
type ConfigKey = config.Key

// Change is what one push carries (Istio's PushRequest.ConfigsUpdated).
type Change struct {
	// Full: treat everything as changed (startup, JWKS, mesh config).
	Full bool
	// Configs are the configs added, changed or removed. nil with Full
	// false means unknown, and is treated as Full.
	Configs map[ConfigKey]struct{}
}

// FullChange is the change that makes everything new.
var FullChange = Change{Full: true}

// isFull says the change must be treated as changing everything.
func (ch Change) isFull() bool { return ch.Full || ch.Configs == nil }

// Merge returns the change covering ch and other, as Istio's debounce
// merges PushRequests; neither is modified.
func (ch Change) Merge(other Change) Change {
	if ch.isFull() || other.isFull() {
		return FullChange
	}
	out := Change{Configs: make(map[ConfigKey]struct{}, len(ch.Configs)+len(other.Configs))}
	for k := range ch.Configs {
		out.Configs[k] = struct{}{}
	}
	for k := range other.Configs {
		out.Configs[k] = struct{}{}
	}
	return out
}

// previous is what a push context keeps of the one it was derived from
// (PushOptions.Previous) to tell what a change did: the old versions of
// configs and the old registry, not the old push context itself, so push
// contexts do not chain.
type previous struct {
	resources map[ConfigKey]*config.Resource
	registry  *registry.Registry
	// meshGatewayAPI: the old push had Gateway API routes bound to the
	// mesh (GAMMA).
	meshGatewayAPI bool
	// gatewayAPI: it had Gateway API routes.
	gatewayAPI bool
	// referenced are its referencedHosts.
	referenced map[string]bool
}

// newRegistry builds this push's registry: derived from the previous
// push's when opts say what changed since (registry.Derive shares what
// the change did not touch), else from scratch.
func newRegistry(opts PushOptions) *registry.Registry {
	if opts.Previous != nil && !opts.Change.isFull() {
		return registry.Derive(opts.Previous.Registry, opts.Resources, opts.Change.Configs)
	}
	return registry.Build(opts.Resources, registry.BuildOptions{})
}

// hasMeshGatewayAPI says a Gateway API route is bound to the mesh.
func (pc *PushContext) hasMeshGatewayAPI() bool {
	for _, vs := range pc.virtualServices {
		if vs.GatewayAPI != nil && bound(vs.Gateways, GatewayMesh) {
			return true
		}
	}
	return false
}

// hasGatewayAPI says a route was converted from the Gateway API.
func (pc *PushContext) hasGatewayAPI() bool {
	for _, vs := range pc.virtualServices {
		if vs.GatewayAPI != nil {
			return true
		}
	}
	return false
}

// versions returns the old (in the previous push) and new version of the
// config key, nil where it does not exist; known is false when this push
// has no previous one to tell the old version from.
func (pc *PushContext) versions(key ConfigKey) (old, cur *config.Resource, known bool) {
	cur = pc.resources[key]
	if pc.prev == nil {
		return nil, cur, false
	}
	return pc.prev.resources[key], cur, true
}
