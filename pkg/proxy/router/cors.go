package router

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// CorsFilterName is the CORS HTTP filter, as Envoy registers it.
const CorsFilterName = "envoy.filters.http.cors"

// CorsPolicy is the compiled CORS policy of a route: its own
// envoy.filters.http.cors typed_per_filter_config merged over its virtual
// host's, field by field, as Envoy's CORS filter reads them (the most
// specific level that sets a field wins; enabled and shadow_enabled come
// from the most specific policy alone).
type CorsPolicy struct {
	origins []stringMatch
	// AllowMethods, AllowHeaders, ExposeHeaders and MaxAge are sent as
	// configured; "*" in AllowMethods or AllowHeaders echoes the
	// preflight's Access-Control-Request-Method / -Headers.
	AllowMethods, AllowHeaders, ExposeHeaders, MaxAge string
	AllowCredentials                                  bool
	AllowPrivateNetworkAccess                         bool
	// ForwardNotMatchingPreflights sends a preflight whose origin is not
	// allowed on to the upstream (Envoy's default); false answers it.
	ForwardNotMatchingPreflights bool
	// Enabled is the share of requests the policy is enforced for
	// (filter_enabled; always when unset). Shadow is shadow_enabled: the
	// origin is only evaluated and counted.
	Enabled, Shadow Fraction
}

// OriginAllowed reports whether origin is allowed: an allowed-origin
// matcher that matches "*" allows every origin, as in Envoy.
func (p *CorsPolicy) OriginAllowed(origin string) bool {
	for i := range p.origins {
		if p.origins[i].match("*") || p.origins[i].match(origin) {
			return true
		}
	}
	return false
}

// corsConfig is what Envoy's CorsPolicy messages have in common: the
// filter's per-route config (extensions.filters.http.cors.v3) and the
// deprecated route-level field (config.route.v3).
type corsConfig interface {
	GetAllowOriginStringMatch() []*matcher.StringMatcher
	GetAllowMethods() string
	GetAllowHeaders() string
	GetExposeHeaders() string
	GetMaxAge() string
	GetAllowCredentials() *wrapperspb.BoolValue
	GetFilterEnabled() *core.RuntimeFractionalPercent
	GetShadowEnabled() *core.RuntimeFractionalPercent
	GetAllowPrivateNetworkAccess() *wrapperspb.BoolValue
	GetForwardNotMatchingPreflights() *wrapperspb.BoolValue
	ValidateAll() error
}

// compileCors compiles the route's CORS policy from its and its virtual
// host's typed_per_filter_config (route first). Only when neither has one
// do the deprecated cors fields of the route action and the virtual host
// apply, as in Envoy. A per-filter config that is a disabled FilterConfig
// at the most specific level turns CORS off for the route.
func compileCors(cr *Route, r *route.Route, vh *route.VirtualHost) error {
	var levels []corsConfig
	for _, cfg := range []map[string]*anypb.Any{r.TypedPerFilterConfig, vh.TypedPerFilterConfig} {
		a, ok := cfg[CorsFilterName]
		if !ok {
			continue
		}
		p, disabled, err := unpackCorsConfig(a)
		if err != nil {
			return fmt.Errorf("cors: %w", err)
		}
		if disabled {
			if len(levels) == 0 {
				return nil // the most specific level turns the filter off
			}
			continue
		}
		if p != nil {
			levels = append(levels, p)
		}
	}
	if len(levels) == 0 {
		if c := r.GetRoute().GetCors(); c != nil { //nolint:staticcheck // deprecated, still honoured by Envoy
			levels = append(levels, c)
		}
		if c := vh.GetCors(); c != nil { //nolint:staticcheck
			levels = append(levels, c)
		}
	}
	if len(levels) == 0 {
		return nil
	}
	p, err := mergeCors(levels)
	if err != nil {
		return fmt.Errorf("cors: %w", err)
	}
	cr.Cors = p
	return nil
}

// unpackCorsConfig reads a per-filter config: a CorsPolicy, possibly
// wrapped in a FilterConfig (disabled reports a disabled one).
func unpackCorsConfig(a *anypb.Any) (p corsConfig, disabled bool, err error) {
	var fc route.FilterConfig
	if a.MessageIs(&fc) {
		if err := a.UnmarshalTo(&fc); err != nil {
			return nil, false, err
		}
		if fc.Disabled {
			return nil, true, nil
		}
		if a = fc.Config; a == nil {
			return nil, false, nil
		}
	}
	var cp corsv3.CorsPolicy
	if err := a.UnmarshalTo(&cp); err != nil {
		return nil, false, err
	}
	return &cp, false, nil
}

// mergeCors merges the policies of a route's levels, most specific first.
func mergeCors(levels []corsConfig) (*CorsPolicy, error) {
	for _, l := range levels {
		if err := l.ValidateAll(); err != nil {
			return nil, err
		}
	}
	p := &CorsPolicy{ForwardNotMatchingPreflights: true, Enabled: Always}
	first := func(get func(corsConfig) string) string {
		for _, l := range levels {
			if v := get(l); v != "" {
				return v
			}
		}
		return ""
	}
	firstBool := func(get func(corsConfig) *wrapperspb.BoolValue, def bool) bool {
		for _, l := range levels {
			if v := get(l); v != nil {
				return v.Value
			}
		}
		return def
	}
	for _, l := range levels {
		if ms := l.GetAllowOriginStringMatch(); len(ms) > 0 {
			for _, m := range ms {
				sm, err := compileStringMatch(m)
				if err != nil {
					return nil, fmt.Errorf("allow_origin_string_match: %w", err)
				}
				p.origins = append(p.origins, sm)
			}
			break
		}
	}
	p.AllowMethods = first(corsConfig.GetAllowMethods)
	p.AllowHeaders = first(corsConfig.GetAllowHeaders)
	p.ExposeHeaders = first(corsConfig.GetExposeHeaders)
	p.MaxAge = first(corsConfig.GetMaxAge)
	p.AllowCredentials = firstBool(corsConfig.GetAllowCredentials, false)
	p.AllowPrivateNetworkAccess = firstBool(corsConfig.GetAllowPrivateNetworkAccess, false)
	p.ForwardNotMatchingPreflights = firstBool(corsConfig.GetForwardNotMatchingPreflights, true)
	most := levels[0]
	if fe := most.GetFilterEnabled(); fe != nil {
		p.Enabled = compileFraction(fe.GetDefaultValue())
	}
	p.Shadow = Fraction{0, 100}
	if se := most.GetShadowEnabled(); se != nil {
		p.Shadow = compileFraction(se.GetDefaultValue())
	}
	if strings.ContainsAny(p.MaxAge, "\r\n") || strings.ContainsAny(p.AllowMethods+p.AllowHeaders+p.ExposeHeaders, "\r\n") {
		return nil, fmt.Errorf("header values must not contain line breaks")
	}
	return p, nil
}

// CheckCorsFilter accepts the listener-level config of the CORS filter: an
// empty Cors message (Istio's), the policies coming from the routes.
func CheckCorsFilter(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	var c corsv3.Cors
	if err := a.UnmarshalTo(&c); err != nil {
		return err
	}
	return c.ValidateAll()
}
