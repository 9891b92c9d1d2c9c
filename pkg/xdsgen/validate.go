package xdsgen

import (
	"fmt"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"google.golang.org/protobuf/types/known/anypb"
)

type validator interface{ ValidateAll() error }

// Validate runs Envoy's generated validation (protoc-gen-validate rules)
// over every resource, so what sluice serves is config Envoy would accept.
// Generate already did (Generator.Generate validates what it builds).
func Validate(res *Resources) error {
	for _, l := range res.Listeners {
		if err := validateListener(l); err != nil {
			return err
		}
	}
	for _, r := range res.Routes {
		if err := validateRoute(r); err != nil {
			return err
		}
	}
	for _, c := range res.Clusters {
		if err := validateCluster(c); err != nil {
			return err
		}
	}
	for _, e := range res.Endpoints {
		if err := validateEndpoints(e); err != nil {
			return err
		}
	}
	return nil
}

func validateListener(l *listener.Listener) error {
	if err := l.ValidateAll(); err != nil {
		return fmt.Errorf("listener %q: %w", l.Name, err)
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			if err := validateFilterConfig(f.GetTypedConfig()); err != nil {
				return fmt.Errorf("listener %q: filter %s: %w", l.Name, f.Name, err)
			}
		}
	}
	return nil
}

// validateFilterConfig validates a network filter's typed config and, for
// a connection manager, its HTTP filters' typed configs. Every sidecar's
// listeners carry connection managers that are byte for byte the same as
// many others' (the same namespace, policies and telemetry), so content
// already validated is remembered and not decoded again: a push to a
// thousand proxies decoded each of their managers twice.
func validateFilterConfig(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	if validatedConfigs.has(a) {
		return nil
	}
	if err := validateAny(a); err != nil {
		return err
	}
	if err := validateHTTPFilters(a); err != nil {
		return err
	}
	validatedConfigs.add(a)
	return nil
}

// validatedSet remembers typed configs (type URL and bytes) that passed
// validation, up to maxValidatedBytes of content, then starts over.
type validatedSet struct {
	mu    sync.Mutex
	m     map[string]struct{}
	bytes int
}

const maxValidatedBytes = 16 << 20

var validatedConfigs = &validatedSet{m: map[string]struct{}{}}

func validatedKey(a *anypb.Any) []byte {
	k := make([]byte, 0, len(a.TypeUrl)+1+len(a.Value))
	k = append(k, a.TypeUrl...)
	k = append(k, 0)
	return append(k, a.Value...)
}

func (s *validatedSet) has(a *anypb.Any) bool {
	k := validatedKey(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[string(k)] // no copy for a lookup
	return ok
}

func (s *validatedSet) add(a *anypb.Any) {
	k := validatedKey(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+len(k) > maxValidatedBytes {
		clear(s.m)
		s.bytes = 0
	}
	if _, ok := s.m[string(k)]; !ok {
		s.m[string(k)] = struct{}{}
		s.bytes += len(k)
	}
}

func validateRoute(r *route.RouteConfiguration) error {
	if err := r.ValidateAll(); err != nil {
		return fmt.Errorf("route %q: %w", r.Name, err)
	}
	if err := validateRouteExtensions(r); err != nil {
		return fmt.Errorf("route %q: %w", r.Name, err)
	}
	return nil
}

func validateCluster(c *cluster.Cluster) error {
	if err := c.ValidateAll(); err != nil {
		return fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	for key, opts := range c.TypedExtensionProtocolOptions {
		if err := validateAny(opts); err != nil {
			return fmt.Errorf("cluster %q: %s: %w", c.Name, key, err)
		}
	}
	return nil
}

func validateEndpoints(e *endpoint.ClusterLoadAssignment) error {
	if err := e.ValidateAll(); err != nil {
		return fmt.Errorf("endpoints %q: %w", e.ClusterName, err)
	}
	return nil
}

// validateAny validates a typed config, which ValidateAll does not open.
func validateAny(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	msg, err := a.UnmarshalNew()
	if err != nil {
		return err
	}
	if v, ok := msg.(validator); ok {
		return v.ValidateAll()
	}
	return nil
}
