package xdsgen

import (
	"fmt"

	"google.golang.org/protobuf/types/known/anypb"
)

type validator interface{ ValidateAll() error }

// Validate runs Envoy's generated validation (protoc-gen-validate rules)
// over every resource, so what sluice serves is config Envoy would accept.
func Validate(res *Resources) error {
	check := func(kind, name string, v validator) error {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s %q: %w", kind, name, err)
		}
		return nil
	}
	for _, l := range res.Listeners {
		if err := check("listener", l.Name, l); err != nil {
			return err
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if err := validateAny(f.GetTypedConfig()); err != nil {
					return fmt.Errorf("listener %q: filter %s: %w", l.Name, f.Name, err)
				}
				if err := validateHTTPFilters(f.GetTypedConfig()); err != nil {
					return fmt.Errorf("listener %q: filter %s: %w", l.Name, f.Name, err)
				}
			}
		}
	}
	for _, r := range res.Routes {
		if err := check("route", r.Name, r); err != nil {
			return err
		}
		if err := validateRouteExtensions(r); err != nil {
			return fmt.Errorf("route %q: %w", r.Name, err)
		}
	}
	for _, c := range res.Clusters {
		if err := check("cluster", c.Name, c); err != nil {
			return err
		}
		for key, opts := range c.TypedExtensionProtocolOptions {
			if err := validateAny(opts); err != nil {
				return fmt.Errorf("cluster %q: %s: %w", c.Name, key, err)
			}
		}
	}
	for _, e := range res.Endpoints {
		if err := check("endpoints", e.ClusterName, e); err != nil {
			return err
		}
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
