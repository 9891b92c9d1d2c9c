package dataplane

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	"github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
)

// HTTPFilter is one entry of a connection manager's compiled http_filters,
// in the order the request passes them. A filter is one package under
// pkg/proxy/filters holding its listener-level check (called here), its
// per-route config compile (called by the router package for
// typed_per_filter_config) and its per-request behaviour (called by
// httpproxy's runFilters); the router filter, last, is httpproxy's
// forward.go with the router package's route tables.
type HTTPFilter uint8

// The HTTP filters sluice runs.
const (
	FilterFault HTTPFilter = iota + 1
	FilterCORS
	FilterRouter
)

// hcmFields are the HttpConnectionManager fields the proxy honours. Every
// other field set is NACKed with its name, so nothing received is silently
// dropped. Fields whose value needs a check are checked in compileHCM.
var hcmFields = map[protoreflect.Name]bool{
	"codec_type": true, "stat_prefix": true, "rds": true, "http_filters": true, "tracing": true,
	"stream_idle_timeout": true, "use_remote_address": true, "generate_request_id": true,
	"preserve_external_request_id": true, "upgrade_configs": true, "normalize_path": true,
	"merge_slashes": true, "path_with_escaped_slashes_action": true, "strip_any_host_port": true,
}

// unsupportedFields names the fields of m that are set but not in allowed.
func unsupportedFields(m proto.Message, allowed map[protoreflect.Name]bool) []string {
	var names []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !allowed[fd.Name()] {
			names = append(names, string(fd.Name()))
		}
		return true
	})
	return names
}

// compileHCM compiles an http_connection_manager into chain. Honoured:
// codec_type AUTO (HTTP/1.1 and h2c on one port), RDS routes, http_filters
// (fault, cors, router, in their order), tracing (decorator only),
// stream_idle_timeout 0 (off), use_remote_address false (the proxy appends
// no X-Forwarded-For and trusts none), generate_request_id true,
// preserve_external_request_id (with use_remote_address false no request is
// external, so x-request-id is always kept), upgrade_configs, the path
// normalization fields and strip_any_host_port.
func compileHCM(f *listener.Filter, chain *FilterChain, dir core.TrafficDirection) error {
	var m hcm.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
	if bad := unsupportedFields(&m, hcmFields); len(bad) > 0 {
		return fmt.Errorf("http_connection_manager: %s: not supported", strings.Join(bad, ", "))
	}
	if err := m.ValidateAll(); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
	if err := checkHCMValues(&m); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
	filters, err := compileHTTPFilters(m.HttpFilters)
	if err != nil {
		return err
	}
	chain.HTTPFilters = filters
	chain.RouteName, chain.StatPrefix = m.GetRds().GetRouteConfigName(), m.StatPrefix
	chain.StripPort = m.GetStripAnyHostPort()
	chain.Path = pathnorm.Options{Normalize: m.GetNormalizePath().GetValue(), MergeSlashes: m.MergeSlashes}
	switch m.PathWithEscapedSlashesAction {
	case hcm.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcm.HttpConnectionManager_KEEP_UNCHANGED:
	case hcm.HttpConnectionManager_REJECT_REQUEST:
		chain.Path.EscapedSlashes = pathnorm.RejectRequest
	case hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		chain.Path.EscapedSlashes = pathnorm.UnescapeAndRedirect
	case hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		chain.Path.EscapedSlashes = pathnorm.UnescapeAndForward
	default:
		return fmt.Errorf("http_connection_manager: path_with_escaped_slashes_action %v is not supported", m.PathWithEscapedSlashesAction)
	}
	for i, u := range m.UpgradeConfigs {
		if len(u.Filters) > 0 {
			return fmt.Errorf("http_connection_manager: upgrade_configs[%d] (%s): filters: not supported", i, u.UpgradeType)
		}
		// CONNECT listed here lets CONNECT requests reach the routes; a
		// route's upgrade_configs with a connect_config terminate it
		// (router/connect.go).
		if chain.Upgrades == nil {
			chain.Upgrades = map[string]bool{}
		}
		// Listed but disabled: off unless a route's upgrade_configs
		// enables it (Envoy's HCM UpgradeConfig.enabled).
		chain.Upgrades[strings.ToLower(u.UpgradeType)] = u.Enabled == nil || u.Enabled.Value
	}
	if tr := m.GetTracing(); tr != nil {
		// Sampling, custom tags, verbose and the like only shape spans;
		// without a provider Envoy makes none that leave the proxy, and
		// neither does sluice. A provider would have to export them.
		if tr.GetProvider() != nil {
			return fmt.Errorf("http_connection_manager: tracing.provider %q: sluice exports no spans", tr.GetProvider().GetName())
		}
		chain.Tracing = TracingIngress
		if dir == core.TrafficDirection_OUTBOUND {
			chain.Tracing = TracingEgress
		}
	}
	return nil
}

// checkHCMValues rejects values of honoured fields that the proxy does not
// implement.
func checkHCMValues(m *hcm.HttpConnectionManager) error {
	if m.GetRds() == nil {
		return fmt.Errorf("route_specifier: only rds is supported")
	}
	// The proxy fetches routes over its one ADS stream.
	if cs := m.GetRds().GetConfigSource(); cs.GetAds() == nil {
		return fmt.Errorf("rds.config_source: only ads is supported")
	}
	if m.CodecType != hcm.HttpConnectionManager_AUTO {
		return fmt.Errorf("codec_type %v: only AUTO (HTTP/1.1 and h2c) is supported", m.CodecType)
	}
	if d := m.GetStreamIdleTimeout(); d != nil && d.AsDuration() != 0 {
		return fmt.Errorf("stream_idle_timeout %v: only 0 (disabled) is supported", d.AsDuration())
	}
	if m.GetUseRemoteAddress().GetValue() {
		return fmt.Errorf("use_remote_address true: not supported")
	}
	if g := m.GetGenerateRequestId(); g != nil && !g.Value {
		return fmt.Errorf("generate_request_id false: not supported")
	}
	return nil
}

// compileHTTPFilters turns http_filters into the chain's order of filters.
// The router must come last, as in Envoy.
func compileHTTPFilters(hfs []*hcm.HttpFilter) ([]HTTPFilter, error) {
	out := make([]HTTPFilter, 0, len(hfs))
	for i, hf := range hfs {
		if hf.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("http filter %q: %w", hf.Name, errConfigDiscovery)
		}
		if hf.Disabled {
			return nil, fmt.Errorf("http filter %q: disabled: not supported", hf.Name)
		}
		switch hf.Name {
		case fault.Name:
			if err := fault.CheckListenerConfig(hf.GetTypedConfig()); err != nil {
				return nil, fmt.Errorf("fault filter: %w", err)
			}
			out = append(out, FilterFault)
		case cors.Name:
			if err := cors.CheckListenerConfig(hf.GetTypedConfig()); err != nil {
				return nil, fmt.Errorf("cors filter: %w", err)
			}
			out = append(out, FilterCORS)
		case "envoy.filters.http.router":
			if err := checkRouterFilter(hf); err != nil {
				return nil, fmt.Errorf("router filter: %w", err)
			}
			if i != len(hfs)-1 {
				return nil, fmt.Errorf("router filter: must be the last http filter")
			}
			out = append(out, FilterRouter)
		default:
			if hf.IsOptional {
				continue // Envoy skips an optional filter it does not know
			}
			return nil, fmt.Errorf("http filter %q is not supported", hf.Name)
		}
	}
	if len(out) == 0 || out[len(out)-1] != FilterRouter {
		return nil, fmt.Errorf("http_filters: no router filter (envoy.filters.http.router) at the end")
	}
	return out, nil
}

// checkRouterFilter accepts the router filter with none of its options:
// every field of envoy.extensions.filters.http.router.v3.Router set is
// NACKed by name.
func checkRouterFilter(hf *hcm.HttpFilter) error {
	tc := hf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	var r routerv3.Router
	if err := tc.UnmarshalTo(&r); err != nil {
		return err
	}
	if bad := unsupportedFields(&r, nil); len(bad) > 0 {
		return fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
	}
	return nil
}

type runtimeError string

func (e runtimeError) Error() string { return string(e) }

const errConfigDiscovery = runtimeError("config_discovery (ECDS) is not supported")
