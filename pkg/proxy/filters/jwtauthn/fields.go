package jwtauthn

import (
	"fmt"
	"sort"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// fields are the JwtAuthentication fields the filter honours, message by
// message: what Istio's policy_applier.go (convertToEnvoyJwtConfig) sends,
// and the rest of Envoy's requirement tree and extraction. Every other
// field set is NACKed by its path. Among them: remote_jwks (istiod fetches
// jwksUri itself and inlines the keys as local_jwks under its default
// PILOT_JWT_ENABLE_REMOTE_JWKS=false; the proxy fetches nothing),
// header_in_metadata, failed_status_in_metadata, subjects,
// require_expiration, max_lifetime, jwt_cache_config, filter_state_rules,
// requirement_map (and per-route configs), strip_failure_response,
// stat_prefix, extract_only_without_validation, claim_path.
var fields = xdsfields.Table{
	name(&jwtv3.JwtAuthentication{}): set("providers", "rules", "bypass_cors_preflight"),
	name(&jwtv3.JwtProvider{}): set("issuer", "audiences", "local_jwks", "forward", "from_headers", "from_params",
		"from_cookies", "forward_payload_header", "pad_forward_payload_header", "payload_in_metadata",
		"normalize_payload_in_metadata", "clock_skew_seconds", "claim_to_headers", "clear_route_cache"),
	name(&jwtv3.JwtHeader{}):                    set("name", "value_prefix"),
	name(&jwtv3.JwtClaimToHeader{}):             set("header_name", "claim_name"),
	name(&jwtv3.JwtProvider_NormalizePayload{}): set("space_delimited_claims"),
	name(&core.DataSource{}):                    set("inline_string", "inline_bytes", "filename"),
	name(&jwtv3.RequirementRule{}):              set("match", "requires"),
	name(&route.RouteMatch{}):                   set("prefix", "path", "path_separated_prefix", "safe_regex", "case_sensitive", "headers"),
	name(&jwtv3.JwtRequirement{}): set("provider_name", "provider_and_audiences", "requires_any", "requires_all",
		"allow_missing", "allow_missing_or_failed"),
	name(&jwtv3.ProviderWithAudiences{}): set("provider_name", "audiences"),
	name(&jwtv3.JwtRequirementOrList{}):  set("requirements"),
	name(&jwtv3.JwtRequirementAndList{}): set("requirements"),
}

func name(m proto.Message) protoreflect.FullName { return m.ProtoReflect().Descriptor().FullName() }

func set(names ...protoreflect.Name) map[protoreflect.Name]bool {
	m := make(map[protoreflect.Name]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkFields NACKs every field the filter does not honour, remote_jwks
// first with the reason.
func checkFields(c *jwtv3.JwtAuthentication) error {
	names := make([]string, 0, len(c.Providers))
	for n := range c.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c.Providers[n].GetRemoteJwks() != nil {
			return fmt.Errorf("providers[%q].remote_jwks: not supported: the proxy fetches no JWKS "+
				"(istiod inlines jwksUri's keys as local_jwks, Istio's default PILOT_JWT_ENABLE_REMOTE_JWKS=false)", n)
		}
	}
	return fields.Check(c)
}
