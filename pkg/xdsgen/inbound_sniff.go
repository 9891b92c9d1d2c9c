package xdsgen

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-mesh/sluice/pkg/model"
)

// Protocol sniffing on inbound ports whose protocol is not known (no
// service port declares the port, or one declares it with an unknown
// protocol): Istio's ListenerProtocolAuto inbound chains
// (pilot/pkg/networking/core/listener_inbound.go inboundChainForOpts,
// filterchain_options.go getFilterChainMatchOptions). Each connection goes
// to an HTTP chain when its application protocol says HTTP (mTLS: the ALPN
// Istio's client sidecars send for HTTP; plaintext: what the http_inspector
// sniffed) and to a TCP chain otherwise.

// HTTPInspectorFilter is Envoy's http_inspector listener filter.
const HTTPInspectorFilter = "envoy.filters.listener.http_inspector"

// ALPNs of Istio's sniffing chains (pilot/pkg/networking/core/listener.go).
var (
	// plaintextHTTPALPNs are what the http_inspector sets for HTTP/1.1 and
	// h2c; HTTP/1.0 is left to the TCP chain (Istio's default, without
	// features.HTTP10).
	plaintextHTTPALPNs = []string{"http/1.1", "h2c"}
	// mtlsHTTPALPNs are what an Istio client sidecar offers for HTTP over
	// mTLS (its istio.alpn filter).
	mtlsHTTPALPNs = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// mtlsTCPWithMxcALPNs are what it offers for opaque TCP.
	mtlsTCPWithMxcALPNs = []string{"istio-peer-exchange", "istio"}
)

// sniffChainMatches are Istio's FilterChainMatchOptions for an auto port
// (inboundStrictFilterChainMatchOptions,
// inboundPermissiveFilterChainMatchWithMxcOptions,
// inboundPlainTextFilterChainMatchOptions), in Istio's order.
func sniffChainMatches(mode model.MTLSMode) []inboundChainMatch {
	switch mode {
	case model.MTLSStrict:
		return []inboundChainMatch{
			{alpn: mtlsHTTPALPNs, transport: TLSTransportProtocol, tls: true, http: true},
			{transport: TLSTransportProtocol, tls: true},
		}
	case model.MTLSPermissive:
		return []inboundChainMatch{
			{alpn: mtlsHTTPALPNs, transport: TLSTransportProtocol, tls: true, http: true},
			{alpn: plaintextHTTPALPNs, transport: RawBufferTransportProtocol, http: true},
			{alpn: mtlsTCPWithMxcALPNs, transport: TLSTransportProtocol, tls: true},
			{transport: RawBufferTransportProtocol},
			// One-way TLS from a client without a sidecar: passed to the
			// app as TCP.
			{transport: TLSTransportProtocol},
		}
	}
	return []inboundChainMatch{
		{alpn: plaintextHTTPALPNs, transport: RawBufferTransportProtocol, http: true},
		{transport: RawBufferTransportProtocol},
	}
}

// sniffedInboundListener is the listener of a sniffed inbound port: the
// chains of sniffChainMatches, each HTTP one with the connection manager
// (security filters first) and each TCP one with [network rbac...,
// tcp_proxy]; the listener filters Istio's populateListenerFilters derives
// from them (the tls_inspector when a chain matches transport "tls", then
// the http_inspector when one matches "http/1.1" or "h2c"); and Istio's
// buildInboundListener timeout: MeshConfig protocolDetectionTimeout
// (Istio's default 0s: no timeout) with continue_on_listener_filters_timeout,
// so a connection whose client sends nothing in time goes to a TCP chain.
func (g *generation) sniffedInboundListener(name string, p inboundPort, mode model.MTLSMode, buildHTTP, buildTCP inboundChainBuilder) (*listener.Listener, error) {
	var chains []*listener.FilterChain
	needTLS, needHTTP := false, false
	for _, m := range sniffChainMatches(mode) {
		build := buildTCP
		if m.http {
			build = buildHTTP
		}
		chain, err := g.inboundChain(m, build)
		if err != nil {
			return nil, err
		}
		chains = append(chains, chain)
		needTLS = needTLS || m.transport == TLSTransportProtocol
		for _, a := range m.alpn {
			needHTTP = needHTTP || a == "http/1.1" || a == "h2c"
		}
	}
	var filters []*listener.ListenerFilter
	if needTLS {
		filters = append(filters, tlsInspector())
	}
	if needHTTP {
		filters = append(filters, httpInspector())
	}
	timeout := g.push.Mesh.GetProtocolDetectionTimeout()
	if timeout == nil {
		timeout = durationpb.New(0) // Istio's mesh default
	}
	return &listener.Listener{
		Name: name, Address: socketAddress(p.host, p.port), TrafficDirection: core.TrafficDirection_INBOUND,
		ListenerFilters: filters, FilterChains: chains,
		ListenerFiltersTimeout: timeout, ContinueOnListenerFiltersTimeout: true,
	}, nil
}

// httpInspector is Istio's xdsfilters.HTTPInspector.
func httpInspector() *listener.ListenerFilter {
	cfg, _ := anypb.New(&httpinspector.HttpInspector{})
	return &listener.ListenerFilter{Name: HTTPInspectorFilter, ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: cfg}}
}
