package xdsgen

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/internal/hostport"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Filter names, as Envoy registers them.
const (
	HTTPConnectionManagerFilter = "envoy.filters.network.http_connection_manager"
	RouterFilter                = "envoy.filters.http.router"
)

type listenerOptions struct {
	Name       string
	Address    string
	StatPrefix string
	RouteName  string
	Direction  core.TrafficDirection
	// StripPort makes the connection manager drop any port from the
	// authority before choosing a virtual host (gateways, as Istio does).
	StripPort bool
	// Tracing is the connection manager's tracing block (tracing.go:
	// Telemetry, else meshConfig enableTracing); nil for none.
	Tracing *hcm.HttpConnectionManager_Tracing
	// Mesh is the mesh config (pathNormalization); nil reads as Istio's
	// defaults.
	Mesh *meshv1alpha1.MeshConfig
	// Connect lists CONNECT in upgrade_configs: the sidecar's outbound
	// listener serves as a forward proxy (connect.go).
	Connect bool
	// SecurityFilters start the connection manager's filter chain
	// (jwt_authn, rbac: security.go), before fault, CORS and the router.
	SecurityFilters []*hcm.HttpFilter
	// XFCC is the x-forwarded-client-cert handling (xfcc.go).
	XFCC xfccRole
	// AccessLog is the connection manager's access_log
	// (generation.accessLog, accesslog.go).
	AccessLog []*accesslogv3.AccessLog
}

// httpListener is a listener with one HTTP connection manager taking its
// routes from RDS.
func httpListener(opts listenerOptions) (*listener.Listener, error) {
	host, port, err := hostport.ParseAddr(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", opts.Name, err)
	}
	chain, err := httpFilterChain(opts)
	if err != nil {
		return nil, err
	}
	return &listener.Listener{
		Name:             opts.Name,
		Address:          socketAddress(host, port),
		TrafficDirection: opts.Direction,
		FilterChains:     []*listener.FilterChain{chain},
	}, nil
}

// internalHTTPListener is an Envoy internal listener (no address, not
// bound) with one HTTP connection manager taking its routes from RDS.
func internalHTTPListener(opts listenerOptions) (*listener.Listener, error) {
	chain, err := httpFilterChain(opts)
	if err != nil {
		return nil, err
	}
	return &listener.Listener{
		Name:              opts.Name,
		ListenerSpecifier: &listener.Listener_InternalListener{InternalListener: &listener.Listener_InternalListenerConfig{}},
		TrafficDirection:  opts.Direction,
		FilterChains:      []*listener.FilterChain{chain},
	}, nil
}

// httpFilterChain is a filter chain with one HTTP connection manager taking
// its routes from RDS.
func httpFilterChain(opts listenerOptions) (*listener.FilterChain, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	fault, err := faultHTTPFilter()
	if err != nil {
		return nil, err
	}
	cors, err := corsHTTPFilter()
	if err != nil {
		return nil, err
	}
	manager := &hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: opts.StatPrefix,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource: adsSource(), RouteConfigName: opts.RouteName,
		}},
		// Fault, then CORS, then the router, in Istio's order; routes
		// carry their faults and CORS policies in typed_per_filter_config.
		HttpFilters: append(append([]*hcm.HttpFilter{}, opts.SecurityFilters...), &hcm.HttpFilter{
			Name: FaultFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: fault},
		}, &hcm.HttpFilter{
			Name: CorsFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cors},
		}, &hcm.HttpFilter{
			Name: RouterFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: router},
		}),
		// Istio turns off the stream idle timeout's default and keeps
		// Envoy's 1h connection idle timeout.
		StreamIdleTimeout:         durationpb.New(0),
		UseRemoteAddress:          wrapBool(false),
		GenerateRequestId:         wrapBool(true),
		PreserveExternalRequestId: false,
		// Istio allows websocket upgrades on every connection manager
		// (buildHTTPConnectionManager in pilot/pkg/networking/core).
		UpgradeConfigs: []*hcm.HttpConnectionManager_UpgradeConfig{{UpgradeType: WebsocketUpgrade}},
	}
	if opts.Connect {
		manager.UpgradeConfigs = append(manager.UpgradeConfigs, &hcm.HttpConnectionManager_UpgradeConfig{UpgradeType: ConnectUpgrade})
	}
	setPathNormalization(manager, opts.Mesh.GetPathNormalization().GetNormalization())
	manager.AccessLog = opts.AccessLog
	applyXFCC(manager, opts.XFCC, opts.Mesh)
	// With a tracing block the proxy reports spans to its provider and
	// passes a route's decorator operation upstream as
	// x-envoy-decorator-operation on outbound listeners (stripping it on
	// inbound ones).
	manager.Tracing = opts.Tracing
	if opts.StripPort {
		manager.StripPortMode = &hcm.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
	}
	typed, err := anypb.New(manager)
	if err != nil {
		return nil, err
	}
	return &listener.FilterChain{
		Filters: []*listener.Filter{{
			Name: HTTPConnectionManagerFilter, ConfigType: &listener.Filter_TypedConfig{TypedConfig: typed},
		}},
	}, nil
}

// WebsocketUpgrade is the upgrade type Istio allows on every connection
// manager.
const WebsocketUpgrade = "websocket"

// setPathNormalization maps meshConfig.pathNormalization onto the
// connection manager exactly as Istio's buildHTTPConnectionManager does
// (pilot/pkg/networking/core/listener.go, "Setup normalization"): BASE (the
// default) is normalize_path; MERGE_SLASHES adds merge_slashes;
// DECODE_AND_MERGE_SLASHES also unescapes %2F and %5C and forwards; NONE
// turns normalization off. Escaped slashes are otherwise kept unchanged.
func setPathNormalization(m *hcm.HttpConnectionManager, level meshv1alpha1.MeshConfig_ProxyPathNormalization_NormalizationType) {
	m.PathWithEscapedSlashesAction = hcm.HttpConnectionManager_KEEP_UNCHANGED
	switch level {
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_NONE:
		m.NormalizePath = wrapBool(false)
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		m.NormalizePath, m.MergeSlashes = wrapBool(true), true
	case meshv1alpha1.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		m.NormalizePath, m.MergeSlashes = wrapBool(true), true
		m.PathWithEscapedSlashesAction = hcm.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default: // DEFAULT, BASE
		m.NormalizePath = wrapBool(true)
	}
}
