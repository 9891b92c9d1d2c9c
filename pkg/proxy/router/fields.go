package router

import (
	"fmt"
	"maps"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// fields is the allow-list of the route configuration (RDS): for each
// message the proxy reads, the fields it honours. Every other field set is
// NACKed by message path and name (checkRouteConfig, checkVirtualHost, checkRoute). A field honoured only for some values has
// its value checked where it is compiled. Where each is honoured:
//   - this package: virtual hosts, domains, require_tls, matching, the
//     route actions (cluster choice, rewrites, redirects, direct
//     responses, upgrades), decorators;
//   - filters/router (policy.go, headers.go, upstream/hashpolicy.go):
//     header edits, timeout, retry, mirror and hash policies, buffer
//     limits, attempt-count headers;
//   - filters/cors: the deprecated cors fields; each registered filter:
//     its typed_per_filter_config entry (httpfilter.CompilePerRoute).
var fields = xdsfields.Table{
	name(&route.RouteConfiguration{}): set("name", "virtual_hosts",
		// Only false (checkRouteConfig): a missing cluster answers
		// cluster_not_found_response_code at request time.
		"validate_clusters"),
	// require_tls: NONE or ALL (Compile).
	name(&route.VirtualHost{}): set("name", "domains", "routes", "require_tls",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"cors", "typed_per_filter_config", "include_request_attempt_count", "include_attempt_count_in_response",
		"retry_policy", "per_request_buffer_limit_bytes", "request_body_buffer_limit", "request_mirror_policies"),
	// metadata: descriptive only in what the proxy reads (Istio's istio
	// filter_metadata names the VirtualService a route came from, for
	// proxy-config); no filter here matches on route metadata.
	name(&route.Route{}): set("name", "match", "route", "redirect", "direct_response", "decorator", "typed_per_filter_config",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"per_request_buffer_limit_bytes", "request_body_buffer_limit", "metadata"),
	name(&route.RouteMatch{}): set("prefix", "path", "safe_regex", "connect_matcher", "path_separated_prefix",
		"case_sensitive", "headers", "query_parameters"),
	name(&route.RouteMatch_ConnectMatcher{}): set(),
	name(&route.RouteAction{}): set("cluster", "weighted_clusters", "cluster_not_found_response_code",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "timeout", "retry_policy",
		"request_mirror_policies", "hash_policy", "cors", "upgrade_configs"),
	name(&route.RouteAction_UpgradeConfig{}): set("upgrade_type", "enabled", "connect_config"),
	// No field of connect_config is implemented (compileConnectConfig).
	name(&route.RouteAction_UpgradeConfig_ConnectConfig{}): set(),
	name(&route.WeightedCluster{}):                         set("clusters"),
	name(&route.WeightedCluster_ClusterWeight{}): set("name", "weight",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"),
	name(&route.RedirectAction{}): set("https_redirect", "scheme_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "response_code", "strip_query"),
	name(&route.DirectResponseAction{}): set("status", "body"),
	// A direct response body is inline only.
	name(&core.DataSource{}): set("inline_bytes", "inline_string"),
	name(&route.HeaderMatcher{}): set("name", "exact_match", "safe_regex_match", "present_match", "prefix_match",
		"suffix_match", "string_match", "invert_match"),
	// present_match false matches on absence (compileQueryMatch).
	name(&route.QueryParameterMatcher{}): set("name", "string_match", "present_match"),
	// per_try_idle_timeout: only 0 (compileRetryPolicy).
	name(&route.RetryPolicy{}): set("retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
		"retry_priority", "retry_host_predicate", "host_selection_retry_max_attempts", "retriable_status_codes",
		"retry_back_off", "retriable_headers", "retriable_request_headers"),
	name(&route.RetryPolicy_RetryBackOff{}):       set("base_interval", "max_interval"),
	name(&route.RetryPolicy_RetryHostPredicate{}): set("name", "typed_config"),
	name(&route.RetryPolicy_RetryPriority{}):      set("name", "typed_config"),
	// trace_sampled only decides whether the shadow request's span is
	// sampled; the proxy exports no spans (the connection manager NACKs a
	// tracing provider), so no value changes what it does.
	name(&route.RouteAction_RequestMirrorPolicy{}): set("cluster", "runtime_fraction", "trace_sampled",
		"disable_shadow_host_suffix_append"),
	// runtime_key: the proxy has no runtime, so default_value applies, as
	// in an Envoy without runtime overrides.
	name(&core.RuntimeFractionalPercent{}):                     set("default_value", "runtime_key"),
	name(&route.RouteAction_HashPolicy{}):                      set("header", "cookie", "connection_properties", "query_parameter", "terminal"),
	name(&route.RouteAction_HashPolicy_Header{}):               set("header_name"),
	name(&route.RouteAction_HashPolicy_Cookie{}):               set("name", "ttl", "path"),
	name(&route.RouteAction_HashPolicy_ConnectionProperties{}): set("source_ip"),
	name(&route.RouteAction_HashPolicy_QueryParameter{}):       set("name"),
	name(&route.Decorator{}):                                   set("operation", "propagate"),
	// The deprecated route-level CorsPolicy: every field (filters/cors
	// mergeCors).
	name(&route.CorsPolicy{}): set("allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers",
		"max_age", "allow_credentials", "filter_enabled", "shadow_enabled", "allow_private_network_access",
		"forward_not_matching_preflights"),
	name(&core.HeaderValueOption{}): set("header", "append", "append_action", "keep_empty_value"),
	name(&core.HeaderValue{}):       set("key", "value", "raw_value"),
}

// vhdsFields is fields with the route configuration's vhds, for a
// configuration whose vhds the caller resolved (CompileOptions.VHDSResolved):
// its config_source is ads (the one ADS stream, Delta), checked by
// checkRouteConfig.
var vhdsFields = func() xdsfields.Table {
	t := maps.Clone(fields)
	rc := maps.Clone(fields[name(&route.RouteConfiguration{})])
	rc["vhds"] = true
	t[name(&route.RouteConfiguration{})] = rc
	t[name(&route.Vhds{})] = set("config_source")
	t[name(&core.ConfigSource{})] = set("ads", "resource_api_version")
	t[name(&core.AggregatedConfigSource{})] = set()
	return t
}()

func name(m proto.Message) protoreflect.FullName { return m.ProtoReflect().Descriptor().FullName() }

func set(names ...protoreflect.Name) map[protoreflect.Name]bool {
	s := make(map[protoreflect.Name]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

var (
	virtualHostType = name(&route.VirtualHost{})
	routeType       = name(&route.Route{})
)

// checkRouteConfig checks the route configuration's own fields; its
// virtual hosts are checked as they are compiled.
func checkRouteConfig(rc *route.RouteConfiguration, vhdsResolved bool) error {
	// Without the caller's resolution, vhds is not on the allow-list.
	tbl := fields
	if vhdsResolved {
		tbl = vhdsFields
	}
	if err := tbl.Check(rc, virtualHostType); err != nil {
		return err
	}
	// The proxy follows VHDS over its one ADS stream.
	if rc.Vhds != nil && rc.Vhds.GetConfigSource().GetAds() == nil {
		return fmt.Errorf("vhds.config_source: only ads is supported")
	}
	if rc.GetValidateClusters().GetValue() {
		return fmt.Errorf("validate_clusters true: not supported (a missing cluster answers cluster_not_found_response_code)")
	}
	return nil
}

// checkVirtualHost checks a virtual host's fields but its routes'.
func checkVirtualHost(vh *route.VirtualHost) error { return fields.Check(vh, routeType) }

// checkRoute checks a route and everything in it.
func checkRoute(r *route.Route) error { return fields.Check(r) }
