package xdsgen

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/internal/hostport"
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
	// Tracing gives the connection manager a tracing block
	// (meshConfig.enableTracing, as Istio without Telemetry resources).
	Tracing bool
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
		HttpFilters: []*hcm.HttpFilter{{
			Name: FaultFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: fault},
		}, {
			Name: CorsFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cors},
		}, {
			Name: RouterFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		// Istio turns off the stream idle timeout's default and keeps
		// Envoy's 1h connection idle timeout.
		StreamIdleTimeout:         durationpb.New(0),
		UseRemoteAddress:          wrapBool(false),
		NormalizePath:             wrapBool(true),
		MergeSlashes:              false,
		GenerateRequestId:         wrapBool(true),
		PreserveExternalRequestId: false,
	}
	if opts.Tracing {
		// Istio's legacy tracing config, without the span settings (sluice
		// exports no spans): it makes Envoy send a route's decorator
		// operation upstream as x-envoy-decorator-operation on outbound
		// listeners and strip that header on inbound ones.
		manager.Tracing = &hcm.HttpConnectionManager_Tracing{}
	}
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
