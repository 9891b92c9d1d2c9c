// Package cors is Envoy's CORS HTTP filter (envoy.filters.http.cors,
// source/extensions/filters/http/cors): its listener-level config check,
// the per-route policy it compiles from typed_per_filter_config (and the
// deprecated route fields), its counters, and what it does to a request.
package cors

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// Name is the filter's name, as Envoy registers it.
const Name = "envoy.filters.http.cors"

// Stats are the filter's counters per connection manager
// (http.<stat_prefix>.cors.origin_valid / origin_invalid): requests with an
// Origin on a route with a policy.
type Stats struct {
	OriginValid   atomic.Uint64
	OriginInvalid atomic.Uint64
}

// Policy is the compiled CORS policy of a route: its own
// envoy.filters.http.cors typed_per_filter_config merged over its virtual
// host's, field by field, as Envoy's CORS filter reads them (the most
// specific level that sets a field wins; enabled and shadow_enabled come
// from the most specific policy alone).
type Policy struct {
	origins []strmatch.String
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
	Enabled, Shadow httpfilter.Fraction
}

// OriginAllowed reports whether origin is allowed: an allowed-origin
// matcher that matches "*" allows every origin, as in Envoy.
func (p *Policy) OriginAllowed(origin string) bool {
	for i := range p.origins {
		if p.origins[i].Match("*") || p.origins[i].Match(origin) {
			return true
		}
	}
	return false
}

// PolicyConfig is what Envoy's CorsPolicy messages have in common: the
// filter's per-route config (extensions.filters.http.cors.v3) and the
// deprecated route-level field (config.route.v3).
type PolicyConfig interface {
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

// CompilePerRoute compiles a route's policy from the filter's
// typed_per_filter_config at each level, most specific (the route) first;
// nil entries are levels without one. Only when no level has one do the
// deprecated cors fields (legacy, most specific first) apply, as in Envoy.
// A disabled FilterConfig at the most specific level turns CORS off for
// the route. Nil means no policy.
func CompilePerRoute(perFilter []*anypb.Any, legacy []PolicyConfig) (*Policy, error) {
	var levels []PolicyConfig
	for _, a := range perFilter {
		if a == nil {
			continue
		}
		p, disabled, err := unpackConfig(a)
		if err != nil {
			return nil, err
		}
		if disabled {
			if len(levels) == 0 {
				return nil, nil // the most specific level turns the filter off
			}
			continue
		}
		if p != nil {
			levels = append(levels, p)
		}
	}
	if len(levels) == 0 {
		levels = legacy
	}
	if len(levels) == 0 {
		return nil, nil
	}
	return mergeCors(levels)
}

// unpackConfig reads a per-filter config: a CorsPolicy, possibly
// wrapped in a FilterConfig (disabled reports a disabled one).
func unpackConfig(a *anypb.Any) (p PolicyConfig, disabled bool, err error) {
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
func mergeCors(levels []PolicyConfig) (*Policy, error) {
	for _, l := range levels {
		if err := l.ValidateAll(); err != nil {
			return nil, err
		}
	}
	p := &Policy{ForwardNotMatchingPreflights: true, Enabled: httpfilter.Always}
	first := func(get func(PolicyConfig) string) string {
		for _, l := range levels {
			if v := get(l); v != "" {
				return v
			}
		}
		return ""
	}
	firstBool := func(get func(PolicyConfig) *wrapperspb.BoolValue, def bool) bool {
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
				sm, err := strmatch.Compile(m)
				if err != nil {
					return nil, fmt.Errorf("allow_origin_string_match: %w", err)
				}
				p.origins = append(p.origins, sm)
			}
			break
		}
	}
	p.AllowMethods = first(PolicyConfig.GetAllowMethods)
	p.AllowHeaders = first(PolicyConfig.GetAllowHeaders)
	p.ExposeHeaders = first(PolicyConfig.GetExposeHeaders)
	p.MaxAge = first(PolicyConfig.GetMaxAge)
	p.AllowCredentials = firstBool(PolicyConfig.GetAllowCredentials, false)
	p.AllowPrivateNetworkAccess = firstBool(PolicyConfig.GetAllowPrivateNetworkAccess, false)
	p.ForwardNotMatchingPreflights = firstBool(PolicyConfig.GetForwardNotMatchingPreflights, true)
	most := levels[0]
	if fe := most.GetFilterEnabled(); fe != nil {
		p.Enabled = httpfilter.CompileFraction(fe.GetDefaultValue())
	}
	p.Shadow = httpfilter.Fraction{Numerator: 0, Denominator: 100}
	if se := most.GetShadowEnabled(); se != nil {
		p.Shadow = httpfilter.CompileFraction(se.GetDefaultValue())
	}
	if strings.ContainsAny(p.MaxAge, "\r\n") || strings.ContainsAny(p.AllowMethods+p.AllowHeaders+p.ExposeHeaders, "\r\n") {
		return nil, fmt.Errorf("header values must not contain line breaks")
	}
	return p, nil
}

// CheckListenerConfig accepts the listener-level config of the CORS filter: an
// empty Cors message (Istio's), the policies coming from the routes.
func CheckListenerConfig(a *anypb.Any) error {
	if a == nil {
		return nil
	}
	var c corsv3.Cors
	if err := a.UnmarshalTo(&c); err != nil {
		return err
	}
	return c.ValidateAll()
}

// CORS header names.
const (
	hdrOrigin                     = "Origin"
	hdrRequestMethod              = "Access-Control-Request-Method"
	hdrRequestHeaders             = "Access-Control-Request-Headers"
	hdrRequestPrivateNetwork      = "Access-Control-Request-Private-Network"
	hdrAllowOrigin                = "Access-Control-Allow-Origin"
	hdrAllowCredentials           = "Access-Control-Allow-Credentials"
	hdrAllowMethods               = "Access-Control-Allow-Methods"
	hdrAllowHeaders               = "Access-Control-Allow-Headers"
	hdrAllowPrivateNetwork        = "Access-Control-Allow-Private-Network"
	hdrMaxAge                     = "Access-Control-Max-Age"
	hdrExposeHeaders              = "Access-Control-Expose-Headers"
	corsPreflightReason           = "cors preflight answered by the proxy"
	corsPreflightNotAllowedReason = "cors preflight from an origin not allowed, answered by the proxy"
)

// Decode runs a route's CORS policy where Envoy's CORS filter sits in
// the chain. Only a request with an Origin is looked at (Envoy's rules):
//
//   - A preflight (OPTIONS with Access-Control-Request-Method) from an
//     allowed origin is answered 200 by the proxy with
//     Access-Control-Allow-Origin (the request's Origin), -Allow-Credentials
//     (when allowed), -Allow-Methods and -Allow-Headers (a configured "*"
//     echoes the request's Access-Control-Request-Method / -Headers),
//     -Max-Age and -Expose-Headers. From an origin not allowed it is
//     forwarded (forward_not_matching_preflights, the default) or answered
//     200 with the same headers but no -Allow-Origin and -Expose-Headers.
//   - Any other request is forwarded; when its origin is allowed, whatever
//     answer it gets (the upstream's, or the proxy's own: redirect, direct
//     response, 503, ...) gets Access-Control-Allow-Origin, -Allow-Credentials
//     and -Expose-Headers, replacing the upstream's.
//
// Envoy adds no Vary header and neither does sluice. It returns the writer
// the rest of the request path answers through, and whether the request
// has been answered.
func (p *Policy) Decode(w http.ResponseWriter, r *http.Request, st *Stats, info *httpfilter.RequestInfo) (http.ResponseWriter, bool) {
	origin := httpfilter.FirstHeader(r.Header, hdrOrigin)
	if origin == "" {
		return w, false
	}
	enabled := p.Enabled.Sampled()
	if !enabled && !p.Shadow.Sampled() {
		return w, false
	}
	allowed := p.OriginAllowed(origin)
	if allowed {
		st.OriginValid.Add(1)
	} else {
		st.OriginInvalid.Add(1)
	}
	if !enabled {
		return w, false // shadow mode: evaluated and counted only
	}
	reqMethod := httpfilter.FirstHeader(r.Header, hdrRequestMethod)
	if r.Method != http.MethodOptions || reqMethod == "" {
		if !allowed {
			return w, false
		}
		return &corsWriter{ResponseWriter: w, origin: origin, policy: p}, false
	}
	if !allowed && p.ForwardNotMatchingPreflights {
		return w, false
	}
	answerPreflight(w, r, p, origin, reqMethod, allowed, info)
	return w, true
}

// answerPreflight is Envoy's answer to a preflight: 200, no body, the
// allow-* headers, and then what the filter adds to every answer of an
// allowed origin (its encoder runs over its own reply).
func answerPreflight(w http.ResponseWriter, r *http.Request, p *Policy, origin, reqMethod string, allowed bool, info *httpfilter.RequestInfo) {
	hdr := w.Header()
	if allowed {
		hdr.Set(hdrAllowOrigin, origin)
	}
	if p.AllowCredentials {
		hdr.Set(hdrAllowCredentials, "true")
	}
	switch p.AllowMethods {
	case "":
	case "*":
		hdr.Set(hdrAllowMethods, reqMethod)
	default:
		hdr.Set(hdrAllowMethods, p.AllowMethods)
	}
	switch p.AllowHeaders {
	case "":
	case "*":
		// Envoy echoes the request's list, an empty header when there is
		// none; sluice leaves it out then (the Gateway API requires that,
		// and a browser reads both the same).
		if v := httpfilter.FirstHeader(r.Header, hdrRequestHeaders); v != "" {
			hdr.Set(hdrAllowHeaders, v)
		}
	default:
		hdr.Set(hdrAllowHeaders, p.AllowHeaders)
	}
	if p.MaxAge != "" {
		hdr.Set(hdrMaxAge, p.MaxAge)
	}
	if p.AllowPrivateNetworkAccess && httpfilter.FirstHeader(r.Header, hdrRequestPrivateNetwork) == "true" {
		hdr.Set(hdrAllowPrivateNetwork, "true")
	}
	reason := corsPreflightReason
	if allowed {
		if p.ExposeHeaders != "" {
			hdr.Set(hdrExposeHeaders, p.ExposeHeaders)
		}
	} else {
		reason = corsPreflightNotAllowedReason
	}
	hdr.Set("X-Sluice-Reason", reason+": route "+info.Route)
	hdr.Set("Content-Length", "0")
	info.Status = http.StatusOK
	w.WriteHeader(http.StatusOK)
}

// corsWriter adds the CORS headers of an allowed origin to the answer,
// whoever makes it, just before its headers are sent.
type corsWriter struct {
	http.ResponseWriter
	origin string
	policy *Policy
	done   bool
}

func (c *corsWriter) addHeaders() {
	if c.done {
		return
	}
	c.done = true
	hdr := c.ResponseWriter.Header()
	hdr.Set(hdrAllowOrigin, c.origin)
	if c.policy.AllowCredentials {
		hdr.Set(hdrAllowCredentials, "true")
	}
	if c.policy.ExposeHeaders != "" {
		hdr.Set(hdrExposeHeaders, c.policy.ExposeHeaders)
	}
}

func (c *corsWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		c.addHeaders() // informational answers pass untouched, as in Envoy
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(b []byte) (int, error) {
	c.addHeaders()
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
