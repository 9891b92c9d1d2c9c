package xdsgen

import (
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// CorsFilter is the name Envoy registers the CORS HTTP filter under.
const CorsFilter = "envoy.filters.http.cors"

// corsHTTPFilter is the CORS filter Istio puts in every HTTP connection
// manager, after the fault filter and before the router, with an empty
// config: the policies come from the routes' typed_per_filter_config.
func corsHTTPFilter() (*anypb.Any, error) { return anypb.New(&corsv3.Cors{}) }

// translateCORSPolicy is Istio's TranslateCORSPolicy: allowOrigins become
// string matchers (the deprecated allowOrigin exact ones), the lists are
// joined with ",", maxAge is whole seconds, the filter is enabled for 100%
// of requests, and preflights from origins that do not match are forwarded
// unless unmatchedPreflights is IGNORE.
func translateCORSPolicy(in *networking.CorsPolicy) *corsv3.CorsPolicy {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		ForwardNotMatchingPreflights: wrapperspb.Bool(in.GetUnmatchedPreflights() != networking.CorsPolicy_IGNORE),
		FilterEnabled: &core.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
		},
		AllowCredentials: in.AllowCredentials,
		AllowHeaders:     strings.Join(in.AllowHeaders, ","),
		AllowMethods:     strings.Join(in.AllowMethods, ","),
		ExposeHeaders:    strings.Join(in.ExposeHeaders, ","),
	}
	//nolint:staticcheck // allowOrigin is deprecated; Istio still honours it
	if in.AllowOrigins != nil {
		for _, o := range in.AllowOrigins {
			if m := stringMatcher(o); m != nil { // Istio's ConvertToEnvoyMatch
				out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
			}
		}
	} else {
		for _, o := range in.AllowOrigin { //nolint:staticcheck
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch,
				&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: o}})
		}
	}
	if in.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(in.MaxAge.GetSeconds(), 10)
	}
	return out
}

// routePerFilterConfig is a route's typed_per_filter_config, as Istio
// builds it whatever the route's action: the fault and the CORS policy.
// Nil when the route has neither.
func routePerFilterConfig(hr *networking.HTTPRoute) map[string]*anypb.Any {
	out := faultPerFilterConfig(hr.Fault)
	if p := translateCORSPolicy(hr.CorsPolicy); p != nil {
		a, err := anypb.New(p)
		if err != nil {
			return out
		}
		if out == nil {
			out = map[string]*anypb.Any{}
		}
		out[CorsFilter] = a
	}
	return out
}
