package model

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// referencedHosts are the hostnames generation looks up in the registry
// whatever a proxy's Sidecar scope and the services' exportTo: every
// VirtualService host (xdsgen vhosts.go unclaimedVirtualServiceHosts asks
// whether it names a service) and route destination (routes.go
// destinationCluster takes the service's only port), and the services of
// MeshConfig extension providers (tracing.go). Computed once per push.
func (pc *PushContext) referencedHosts() map[string]bool {
	pc.refsOnce.Do(func() {
		refs := map[string]bool{}
		add := func(vs *VirtualService) {
			for _, h := range vs.Hosts {
				refs[h] = true
			}
			for _, d := range destinations(vs.Spec) {
				refs[config.ResolveHost(d.GetHost(), vs.Namespace, "")] = true
			}
		}
		for _, vs := range pc.virtualServices {
			add(vs)
		}
		for _, vs := range pc.delegates {
			add(vs)
		}
		pc.refs = refs
	})
	return pc.refs
}

func destinations(spec *networking.VirtualService) []*networking.Destination {
	var out []*networking.Destination
	for _, r := range spec.Http {
		for _, d := range r.Route {
			out = append(out, d.Destination)
		}
		if r.Mirror != nil {
			out = append(out, r.Mirror)
		}
		for _, m := range r.Mirrors {
			out = append(out, m.Destination)
		}
	}
	for _, r := range spec.Tcp {
		for _, d := range r.Route {
			out = append(out, d.Destination)
		}
	}
	for _, r := range spec.Tls {
		for _, d := range r.Route {
			out = append(out, d.Destination)
		}
	}
	return out
}

// providerService says a MeshConfig extension provider's service names
// host ("host", "ns/host", or a short name of it).
func (pc *PushContext) providerService(host string) bool {
	for _, p := range pc.Mesh.GetExtensionProviders() {
		m := p.ProtoReflect()
		od := m.Descriptor().Oneofs().ByName("provider")
		if od == nil {
			return true
		}
		fd := m.WhichOneof(od)
		if fd == nil || fd.Kind() != protoreflect.MessageKind {
			continue
		}
		inner := m.Get(fd).Message()
		sf := inner.Descriptor().Fields().ByName("service")
		if sf == nil || sf.Kind() != protoreflect.StringKind {
			continue
		}
		svc := inner.Get(sf).String()
		if _, rest, ok := strings.Cut(svc, "/"); ok {
			svc = rest
		}
		if svc != "" && (svc == host || strings.HasPrefix(host, svc+".")) {
			return true
		}
	}
	return false
}
