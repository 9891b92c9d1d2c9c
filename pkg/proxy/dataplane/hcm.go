package dataplane

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"

	// The HTTP filters the proxy has: each registers its factory with
	// httpfilter. A new filter is one more import here.
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/cors"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/fault"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/jwtauthn"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/rbac"
	_ "github.com/sluice-mesh/sluice/pkg/proxy/filters/router"
)

// hcmFields are the HttpConnectionManager fields the proxy honours. Every
// other field set is NACKed with its name, so nothing received is silently
// dropped. Fields whose value needs a check are checked in compileHCM.
var hcmFields = map[protoreflect.Name]bool{
	"codec_type": true, "stat_prefix": true, "rds": true, "http_filters": true, "tracing": true,
	"stream_idle_timeout": true, "use_remote_address": true, "generate_request_id": true,
	"preserve_external_request_id": true, "upgrade_configs": true, "normalize_path": true,
	"merge_slashes": true, "path_with_escaped_slashes_action": true, "strip_any_host_port": true,
	"forward_client_cert_details": true, "set_current_client_cert_details": true,
	"access_log": true,
}

// compileHCM compiles an http_connection_manager into chain. Honoured:
// codec_type AUTO (HTTP/1.1 and h2c on one port), RDS routes, http_filters
// (compiled by the registered filter factories, in their order), tracing (the decorator; spans with a provider),
// stream_idle_timeout 0 (off), use_remote_address false (the proxy appends
// no X-Forwarded-For and trusts none), generate_request_id true,
// preserve_external_request_id (with use_remote_address false no request is
// external, so x-request-id is always kept), upgrade_configs, the path
// normalization fields, strip_any_host_port, forward_client_cert_details
// and set_current_client_cert_details (xfcc.go), access_log (the file
// logger, pkg/proxy/accesslog).
func compileHCM(f *listener.Filter, chain *FilterChain, dir core.TrafficDirection) error {
	var m hcm.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
	if bad := xdsfields.Unsupported(&m, hcmFields); len(bad) > 0 {
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
	if chain.HTTPFilters, chain.Stats, err = takeStats(filters); err != nil {
		return err
	}
	if chain.AccessLog, err = accesslog.Compile(m.AccessLog); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
	if chain.XFCC, err = compileXFCC(&m); err != nil {
		return fmt.Errorf("http_connection_manager: %w", err)
	}
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
		// With a provider the chain reports spans (pkg/proxy/tracing, every
		// field honoured or refused there). Without one, sampling, custom
		// tags and the like only shape spans that Envoy makes none of that
		// leave the proxy, and neither does sluice: the decorator is all.
		var err error
		if chain.Tracer, err = tracing.Compile(tr, dir == core.TrafficDirection_OUTBOUND); err != nil {
			return fmt.Errorf("http_connection_manager: %w", err)
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

// compileHTTPFilters compiles http_filters, in their order, into the
// chain's filters: each entry goes to the factory registered for the type
// of its typed_config (else its name), as Envoy finds a filter factory,
// which checks the listener-level config and returns the filter. An entry
// no factory takes is NACKed, unless it is_optional (Envoy skips it). The
// terminal filter (the router) must come last, as in Envoy.
func compileHTTPFilters(hfs []*hcm.HttpFilter) ([]httpfilter.Filter, error) {
	out := make([]httpfilter.Filter, 0, len(hfs))
	terminal := false
	for i, hf := range hfs {
		if hf.GetConfigDiscovery() != nil {
			return nil, fmt.Errorf("http filter %q: %w", hf.Name, errConfigDiscovery)
		}
		if hf.Disabled {
			return nil, fmt.Errorf("http filter %q: disabled: not supported", hf.Name)
		}
		fac, ok := httpfilter.Lookup(hf.Name, hf.GetTypedConfig())
		if !ok {
			if hf.IsOptional {
				continue // Envoy skips an optional filter it does not know
			}
			return nil, fmt.Errorf("http filter %q is not supported", hf.Name)
		}
		if fac.Name() != hf.Name {
			// Routes' typed_per_filter_config is compiled by the filter's
			// own name; under another name it would be silently missed.
			return nil, fmt.Errorf("http filter %q: its typed_config is the %s filter's; only that name is supported", hf.Name, fac.Name())
		}
		f, err := fac.NewFilter(hf.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("http filter %q: %w", hf.Name, err)
		}
		if httpfilter.IsTerminal(fac) {
			if i != len(hfs)-1 {
				return nil, fmt.Errorf("http filter %q: a terminal filter must be the last http filter", hf.Name)
			}
			terminal = true
		}
		out = append(out, f)
	}
	if !terminal {
		return nil, fmt.Errorf("http_filters: no router filter (envoy.filters.http.router) at the end")
	}
	return out, nil
}

type runtimeError string

func (e runtimeError) Error() string { return string(e) }

const errConfigDiscovery = runtimeError("config_discovery (ECDS) is not supported")
